import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createServer, connect as connectTcp, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { connect } from 'amqplib';
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../lib/logger.ts';
import { createMemoryWorkQueue } from '../../lib/messaging/memory/createMemoryWorkQueue.ts';
import { MessagingError } from '../../lib/messaging/messagingError.ts';
import { createRabbitWorkQueue } from '../../lib/messaging/rabbit/createRabbitWorkQueue.ts';
import {
  deadLetterQueueName,
  type WorkQueue,
  type WorkQueueTopology,
} from '../../lib/messaging/workQueue.ts';
import { describeWorkQueueContract, type WorkQueueHarness } from './workQueue.contract.ts';

const logger = createLogger({ level: process.env['LOG_LEVEL'] ?? 'silent', service: 'work-queue-test' });

// Under CI the RabbitMQ adapter must be proven against a real broker: missing, the run fails.
const rabbitUrl = process.env['RABBITMQ_URL'];
if (process.env['CI'] === 'true' && !rabbitUrl) {
  throw new Error('CI=true requires RABBITMQ_URL: the RabbitMQ work queue must run against a real broker');
}

describeWorkQueueContract('in-memory', {
  create: () => createMemoryWorkQueue({ logger }),
});

describe('in-memory work queue', () => {
  it('close() leaves no retry timer behind', async () => {
    const pending = new Set<unknown>();
    const queue = createMemoryWorkQueue({
      logger,
      setTimeout: (callback, ms) => {
        const timer = setTimeout(() => {
          pending.delete(timer);
          callback();
        }, ms);
        pending.add(timer);
        return timer;
      },
      clearTimeout: (timer) => {
        pending.delete(timer);
        clearTimeout(timer as NodeJS.Timeout);
      },
    });
    const jobs = { exchange: 'mail', queue: 'mail.email', routingKeys: ['#'], retryDelaysMs: [60_000] };
    let attempts = 0;
    await queue.consume(jobs, {
      prefetch: 1,
      handle: async () => {
        attempts++;
        throw new Error('down');
      },
    });
    await queue.publish('mail', 'anything', { id: 'job', body: '' });
    while (attempts === 0) await sleep(5);
    await sleep(5);
    expect(pending.size).toBe(1); // the retry, a minute away

    await queue.close();
    expect(pending.size).toBe(0);
  });
});

describe('RabbitMQ work queue without a broker', () => {
  it('an unreachable broker makes calls reject with a retriable MessagingError', async () => {
    const queue = createRabbitWorkQueue({
      url: 'amqp://guest:guest@127.0.0.1:1',
      logger,
      confirmTimeoutMs: 2_000,
    });
    const jobs = { exchange: 'mail', queue: 'mail.email', routingKeys: ['#'], retryDelaysMs: [] };
    const declaring = queue.declare(jobs);
    await expect(declaring).rejects.toBeInstanceOf(MessagingError);
    await expect(declaring).rejects.toMatchObject({ retriable: true });
    await queue.close();
  });
});

describe.skipIf(!rabbitUrl)('RabbitMQ', () => {
  const url = rabbitUrl ?? '';
  const rabbit = rabbitHarness(url);

  describeWorkQueueContract('RabbitMQ', rabbit);

  describe('RabbitMQ work queue', () => {
    const cleanups: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
    });

    it('when reconnecting gives up, onFatal is told once and later calls are refused', async () => {
      const proxy = await startProxy(new URL(url));
      cleanups.push(() => proxy.close());
      const proxied = new URL(url);
      proxied.port = String(proxy.port);
      const fatal: MessagingError[] = [];
      const queue = createRabbitWorkQueue({
        url: proxied.toString(),
        logger,
        confirmTimeoutMs: 1_000,
        reconnect: { initialDelayMs: 20, maxDelayMs: 50, maxAttempts: 3 },
        onFatal: (error) => fatal.push(error),
      });
      cleanups.push(() => queue.close());
      const jobs = topologyFor('fatal');
      cleanups.push(() => rabbit.destroy(jobs));
      await queue.consume(jobs, { prefetch: 1, handle: async () => {} });

      await proxy.close(); // the broker is gone for good, as far as this client can tell

      const deadline = performance.now() + 5_000;
      while (fatal.length === 0 && performance.now() < deadline) await sleep(10);
      expect(fatal).toHaveLength(1);
      expect(fatal[0]).toMatchObject({ retriable: false });
      await expect(
        queue.publish(jobs.exchange, 'notification.welcome', { id: 'x', body: '' }),
      ).rejects.toMatchObject({
        retriable: false,
      });
      await queue.close();
      expect(fatal).toHaveLength(1);
    });
  });
});

function topologyFor(name: string): WorkQueueTopology {
  const suffix = `${name}.${randomUUID().slice(0, 8)}`;
  return {
    exchange: `contract.${suffix}`,
    queue: `contract.${suffix}.email`,
    routingKeys: ['notification.*'],
    retryDelaysMs: [20],
  };
}

/** The RabbitMQ adapter with fast reconnects, a connection name per instance, and cleanup. */
function rabbitHarness(url: string): Required<WorkQueueHarness> {
  const connectionNames = new WeakMap<WorkQueue, string>();
  return {
    create() {
      const connectionName = `work-queue-contract-${randomUUID()}`;
      const queue = createRabbitWorkQueue({
        url,
        logger,
        connectionName,
        reconnect: { initialDelayMs: 50, maxDelayMs: 500, maxAttempts: 20 },
      });
      connectionNames.set(queue, connectionName);
      return queue;
    },

    async destroy(topology) {
      const model = await connect(url);
      try {
        const channel = await model.createChannel();
        const queues = [
          topology.queue,
          deadLetterQueueName(topology),
          ...new Set(topology.retryDelaysMs.map((delayMs) => `${topology.queue}.retry.${delayMs}`)),
        ];
        for (const queue of queues) await channel.deleteQueue(queue);
        await channel.deleteExchange(topology.exchange);
      } finally {
        await model.close();
      }
    },

    /** `rabbitmqctl close_connection`: the broker closes it with 320 CONNECTION_FORCED. */
    async dropConnection(queue) {
      const wanted = `{"connection_name","${connectionNames.get(queue)}"}`;
      const run = promisify(execFile);
      // Tab-separated rows of `<pid>\t<client properties as an Erlang term>`. The JSON formatter
      // prints pids as `#PID<...>`, which close_connection does not accept.
      const { stdout } = await run('rabbitmqctl', [
        'list_connections',
        'pid',
        'client_properties',
        '--quiet',
        '--no-table-headers',
      ]);
      const pids = stdout
        .split('\n')
        .filter((row) => row.includes(wanted))
        .map((row) => row.split('\t')[0] ?? '');
      if (pids.length === 0) throw new Error(`no RabbitMQ connection with client property ${wanted}`);
      for (const pid of pids) {
        await run('rabbitmqctl', ['close_connection', pid, 'contract test: dropped connection']);
      }
    },
  };
}

/** A TCP proxy to the broker that the test can take away, to simulate a broker gone for good. */
async function startProxy(target: URL): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = connectTcp(Number(target.port || 5672), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  let closed: Promise<void> | undefined;
  return {
    port: address.port,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      });
      return closed;
    },
  };
}
