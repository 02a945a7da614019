import { readdir, readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import kafkajs from 'kafkajs';
import { startKafka, stopKafka } from '../../scripts/kafka.ts';

const { Kafka, logLevel } = kafkajs;

export interface Broker {
  brokers: string;
  /** The broker's JVM, for its CPU time (undefined when it cannot be found). */
  pid: number | undefined;
  /** How it came to be, for the results file. */
  origin: string;
  stop(): Promise<void>;
}

/** The pid of a Kafka JVM on this machine whose server.properties listens on `port`. */
async function findBrokerPid(port: number): Promise<number | undefined> {
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = (await readFile(`/proc/${entry}/cmdline`, 'utf8')).split('\0');
      const main = args.indexOf('kafka.Kafka');
      if (main < 0 || !args[main + 1]) continue;
      const properties = await readFile(args[main + 1]!, 'utf8');
      if (new RegExp(`^listeners=.*:${port}(,|$)`, 'm').test(properties)) return Number(entry);
    } catch {
      // exited, or not ours to read
    }
  }
  return undefined;
}

/**
 * KAFKA_BROKERS when set; otherwise a broker of this run's own (scripts/kafka.ts) on `port` in
 * `dataDir`, stopped at the end. A broker already answering on that port is used and left running.
 */
export async function provideBroker(options: {
  brokers: string | undefined;
  port: number;
  dataDir: string;
  log: (line: string) => void;
}): Promise<Broker> {
  if (options.brokers) {
    const port = Number(options.brokers.split(',')[0]!.split(':').pop());
    return {
      brokers: options.brokers,
      pid: await findBrokerPid(port),
      origin: `KAFKA_BROKERS=${options.brokers}`,
      stop: async () => {},
    };
  }
  const kafka = {
    port: options.port,
    dataDir: options.dataDir,
    log: (line: string) => options.log(`kafka: ${line}`),
  };
  const started = await startKafka(kafka);
  return {
    brokers: started.brokers,
    pid: started.pid ?? (await findBrokerPid(options.port)),
    origin: started.alreadyRunning
      ? `a broker already running on ${started.brokers}`
      : `its own broker (scripts/kafka.ts) on ${started.brokers}, fresh for the run`,
    stop: async () => {
      if (!started.alreadyRunning) await stopKafka(kafka);
    },
  };
}

/**
 * Deletes the topics and consumer groups of `namespace`, so events and offsets of an earlier
 * run (this run's services start on empty databases) are not replayed into this one.
 */
export async function resetNamespace(brokers: string, namespace: string): Promise<void> {
  const admin = new Kafka({
    clientId: 'bench-orders',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  try {
    const { groups } = await admin.listGroups();
    const ours = groups.map((g) => g.groupId).filter((id) => id.startsWith(namespace));
    // A group keeps the members of stopped consumers until their session times out.
    const deadline = Date.now() + 60_000;
    while (ours.length) {
      const described = await admin.describeGroups(ours);
      if (described.groups.every((g) => g.members.length === 0)) break;
      if (Date.now() > deadline) throw new Error(`Kafka groups ${ours.join(', ')} still have members`);
      await sleep(1_000);
    }
    if (ours.length) await admin.deleteGroups(ours);
    const topics = (await admin.listTopics()).filter((topic) => topic.startsWith(namespace));
    if (topics.length) {
      await admin.deleteTopics({ topics });
      // Deletion finishes in the background; the services must not recreate them before it has.
      const deadline = Date.now() + 30_000;
      while ((await admin.listTopics()).some((topic) => topics.includes(topic))) {
        if (Date.now() > deadline) throw new Error(`Kafka did not delete ${topics.join(', ')}`);
        await sleep(200);
      }
    }
  } finally {
    await admin.disconnect();
  }
}
