/**
 * A real Apache Kafka broker for development, tests and CI, without Docker:
 *
 *   npm run kafka:start    fetch Kafka from Maven Central (first time only), format, start, wait
 *   npm run kafka:stop     stop the broker started from this data directory
 *   npm run kafka:status   print running/stopped; exit 0 when the broker answers, 1 otherwise
 *
 * The jars (org.apache.kafka:kafka_2.13 and its runtime dependencies, plus slf4j-reload4j and
 * reload4j for logging) are copied with `mvn dependency:copy-dependencies` into a cache
 * (KAFKA_CACHE_DIR, default ~/.cache/event-federation/kafka-<version>). The broker is one KRaft
 * node (broker and controller) on 127.0.0.1:KAFKA_PORT (default 9092; controller on
 * KAFKA_CONTROLLER_PORT, default KAFKA_PORT + 1) with its state in KAFKA_DATA_DIR (default
 * .data/kafka): server.properties, log4j.properties, the log dir, broker.log and kafka.pid.
 *
 * Importing this module runs nothing: startKafka, stopKafka and kafkaStatus are exported for tests.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stripVTControlCharacters } from 'node:util';
import kafkajs from 'kafkajs';

const { Kafka, logLevel } = kafkajs;

/** The newest 3.9.x on Maven Central when this was written. */
export const KAFKA_VERSION = '3.9.2';
const SCALA_VERSION = '2.13';
/** The logging binding Kafka 3.9 ships with. */
const SLF4J_VERSION = '1.7.36';
const RELOAD4J_VERSION = '1.2.25';
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

const HOST = '127.0.0.1';
const PROJECT_ROOT = fileURLToPath(new URL('..', import.meta.url));
/** Written into the libs directory once every jar is there. */
const COMPLETE_MARKER = '.complete';
/** Written into broker.log before each start, so a failure shows only that start's lines. */
const START_MARKER = '=== scripts/kafka.ts: broker starting';

export interface KafkaOptions {
  /** Client (PLAINTEXT) port on 127.0.0.1. Default KAFKA_PORT or 9092. */
  port?: number;
  /** KRaft controller port on 127.0.0.1. Default KAFKA_CONTROLLER_PORT or port + 1. */
  controllerPort?: number;
  /** Broker state: configuration, log dir, broker.log, kafka.pid. Default KAFKA_DATA_DIR or .data/kafka. */
  dataDir?: string;
  /** Where the jars are cached. Default KAFKA_CACHE_DIR or ~/.cache/event-federation/kafka-<version>. */
  cacheDir?: string;
  /** JVM heap options. Default KAFKA_HEAP_OPTS or `-Xmx512m -Xms256m`. */
  heapOpts?: string;
  /** How long start waits for the broker to accept clients. Default 90 s. */
  startTimeoutMs?: number;
  /** How long stop waits after SIGTERM before SIGKILL. Default 30 s. */
  stopTimeoutMs?: number;
  /** Progress lines. Default: console.log with a `kafka:` prefix. */
  log?: (line: string) => void;
}

interface Resolved {
  port: number;
  controllerPort: number;
  dataDir: string;
  cacheDir: string;
  libsDir: string;
  logDir: string;
  serverProperties: string;
  log4jProperties: string;
  brokerLog: string;
  pidFile: string;
  heapOpts: string[];
  startTimeoutMs: number;
  stopTimeoutMs: number;
  log: (line: string) => void;
}

/** A failure with a message meant for the person running the command. */
export class KafkaScriptError extends Error {
  override name = 'KafkaScriptError';
}

function envPort(name: string): number | undefined {
  const raw = process.env[name]?.trim();
  if (!raw) return undefined;
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new KafkaScriptError(`${name} must be a port number (1-65535), got "${raw}"`);
  }
  return port;
}

function envString(name: string): string | undefined {
  const raw = process.env[name]?.trim();
  return raw ? raw : undefined;
}

function resolveOptions(options: KafkaOptions = {}): Resolved {
  const port = options.port ?? envPort('KAFKA_PORT') ?? 9092;
  const controllerPort = options.controllerPort ?? envPort('KAFKA_CONTROLLER_PORT') ?? port + 1;
  if (controllerPort === port) {
    throw new KafkaScriptError(`the controller port must differ from the client port (${port})`);
  }
  const dataDir = resolve(PROJECT_ROOT, options.dataDir ?? envString('KAFKA_DATA_DIR') ?? '.data/kafka');
  const cacheHome = envString('XDG_CACHE_HOME') ?? join(homedir(), '.cache');
  const cacheDir = resolve(
    options.cacheDir ??
      envString('KAFKA_CACHE_DIR') ??
      join(cacheHome, 'event-federation', `kafka-${KAFKA_VERSION}`),
  );
  const heapOpts = (options.heapOpts ?? envString('KAFKA_HEAP_OPTS') ?? '-Xmx512m -Xms256m')
    .split(/\s+/)
    .filter(Boolean);
  return {
    port,
    controllerPort,
    dataDir,
    cacheDir,
    libsDir: join(cacheDir, 'libs'),
    logDir: join(dataDir, 'kraft-logs'),
    serverProperties: join(dataDir, 'server.properties'),
    log4jProperties: join(dataDir, 'log4j.properties'),
    brokerLog: join(dataDir, 'broker.log'),
    pidFile: join(dataDir, 'kafka.pid'),
    heapOpts,
    startTimeoutMs: options.startTimeoutMs ?? 90_000,
    stopTimeoutMs: options.stopTimeoutMs ?? 30_000,
    log: options.log ?? ((line) => console.log(`kafka: ${line}`)),
  };
}

const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)} s`;
}

function javaBin(): string {
  const javaHome = envString('JAVA_HOME');
  return javaHome ? join(javaHome, 'bin', 'java') : 'java';
}

/** Fails with a clear message when `java` cannot run. */
function checkJava(): void {
  const result = spawnSync(javaBin(), ['-version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    const why = result.error ? result.error.message : (result.stderr || '').trim();
    throw new KafkaScriptError(
      `java is needed to run Kafka and could not be run (${javaBin()}): ${why}. Install Java 17 or set JAVA_HOME.`,
    );
  }
}

function pomXml(): string {
  const dependency = (groupId: string, artifactId: string, version: string) => `
    <dependency>
      <groupId>${groupId}</groupId>
      <artifactId>${artifactId}</artifactId>
      <version>${version}</version>
    </dependency>`;
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/kafka.ts: the jars a Kafka ${KAFKA_VERSION} broker needs. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.event-federation</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>${KAFKA_VERSION}</version>
  <packaging>pom</packaging>
  <dependencies>${dependency('org.apache.kafka', `kafka_${SCALA_VERSION}`, KAFKA_VERSION)}${dependency(
    'org.slf4j',
    'slf4j-reload4j',
    SLF4J_VERSION,
  )}${dependency('ch.qos.reload4j', 'reload4j', RELOAD4J_VERSION)}
  </dependencies>
</project>
`;
}

/** Runs a command, resolving with its exit code and combined output. */
function run(command: string, args: string[], cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', fail);
    child.on('close', (code) => done({ code: code ?? 1, output }));
  });
}

/** The last lines of text, without terminal colours (mvn prints some even in batch mode). */
function tail(text: string, lines: number): string {
  return stripVTControlCharacters(text).trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Makes sure the Kafka jars are in the cache, fetching them with Maven the first time. Safe to
 * run concurrently: each run copies into its own directory and renames it into place.
 */
export async function ensureKafkaLibs(options: KafkaOptions = {}): Promise<string> {
  const o = resolveOptions(options);
  if (existsSync(join(o.libsDir, COMPLETE_MARKER))) return o.libsDir;

  const started = Date.now();
  o.log(`fetching Kafka ${KAFKA_VERSION} from Maven Central into ${o.cacheDir} (first time only)`);
  await mkdir(o.cacheDir, { recursive: true });
  const partial = join(o.cacheDir, `libs.partial-${process.pid}`);
  await rm(partial, { recursive: true, force: true });
  const pom = join(o.cacheDir, 'pom.xml');
  await writeFile(pom, pomXml());
  let result: { code: number; output: string };
  try {
    result = await run(
      'mvn',
      [
        '-B',
        '-q',
        '-ntp',
        '-f',
        pom,
        `${DEPENDENCY_PLUGIN}:copy-dependencies`,
        `-DoutputDirectory=${partial}`,
        '-DincludeScope=runtime',
      ],
      o.cacheDir,
    );
  } catch (error) {
    throw new KafkaScriptError(
      `mvn is needed to fetch Kafka the first time and could not be run: ${(error as Error).message}. Install Maven 3.8+.`,
    );
  }
  if (result.code !== 0) {
    await rm(partial, { recursive: true, force: true });
    throw new KafkaScriptError(
      `mvn dependency:copy-dependencies failed (exit ${result.code}) fetching org.apache.kafka:kafka_${SCALA_VERSION}:${KAFKA_VERSION}:\n${tail(result.output, 40)}`,
    );
  }
  for (const jar of [`kafka_${SCALA_VERSION}-${KAFKA_VERSION}.jar`, `kafka-raft-${KAFKA_VERSION}.jar`]) {
    if (!existsSync(join(partial, jar))) {
      throw new KafkaScriptError(`mvn finished but ${jar} is missing from ${partial}`);
    }
  }
  await writeFile(join(partial, COMPLETE_MARKER), `${new Date().toISOString()}\n`);
  await rm(o.libsDir, { recursive: true, force: true });
  try {
    await rename(partial, o.libsDir);
  } catch (error) {
    // Another start got there first: use its copy.
    await rm(partial, { recursive: true, force: true });
    if (!existsSync(join(o.libsDir, COMPLETE_MARKER))) throw error;
  }
  o.log(`fetched Kafka ${KAFKA_VERSION} in ${seconds(started)}`);
  return o.libsDir;
}

function serverPropertiesText(o: Resolved): string {
  return `# Generated by scripts/kafka.ts on every start: a single KRaft node for development and CI.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${o.controllerPort}
listeners=PLAINTEXT://${HOST}:${o.port},CONTROLLER://${HOST}:${o.controllerPort}
advertised.listeners=PLAINTEXT://${HOST}:${o.port}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=${o.logDir}
num.partitions=3
auto.create.topics.enable=true
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
group.initial.rebalance.delay.ms=0
`;
}

function log4jPropertiesText(): string {
  // Everything goes to stdout, which the broker's spawn sends to broker.log.
  return `# Generated by scripts/kafka.ts: warnings and errors, plus the broker's "Kafka Server started" line.
log4j.rootLogger=WARN, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.logger.kafka.Kafka$=INFO
`;
}

/** A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with "-". */
function randomClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString('base64url');
    if (!id.startsWith('-')) return id;
  }
}

function classpath(o: Resolved): string {
  return `${o.libsDir}/*`;
}

async function formatIfNeeded(o: Resolved): Promise<void> {
  if (existsSync(join(o.logDir, 'meta.properties'))) return;
  const started = Date.now();
  const clusterId = randomClusterId();
  o.log(`formatting ${o.logDir} (cluster id ${clusterId})`);
  await mkdir(o.logDir, { recursive: true });
  const result = await run(
    javaBin(),
    [
      `-Dlog4j.configuration=file:${o.log4jProperties}`,
      '-cp',
      classpath(o),
      'kafka.tools.StorageTool',
      'format',
      '-t',
      clusterId,
      '-c',
      o.serverProperties,
    ],
    o.dataDir,
  );
  if (result.code !== 0) {
    throw new KafkaScriptError(
      `kafka.tools.StorageTool format failed (exit ${result.code}):\n${tail(result.output, 30)}`,
    );
  }
  o.log(`formatted in ${seconds(started)}`);
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port: number, timeoutMs = 1000): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect({ host: HOST, port });
    const finish = (open: boolean) => {
      socket.destroy();
      done(open);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** True when a Kafka broker on 127.0.0.1:port answers a metadata request. */
export async function kafkaAnswers(port: number, timeoutMs = 3000): Promise<boolean> {
  if (!(await portOpen(port))) return false;
  const admin = new Kafka({
    clientId: 'kafka-script-probe',
    brokers: [`${HOST}:${port}`],
    connectionTimeout: timeoutMs,
    requestTimeout: timeoutMs,
    retry: { retries: 0 },
    logLevel: logLevel.NOTHING,
  }).admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    return cluster.brokers.length > 0;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The command line of a live process, or undefined when it cannot be read. */
function commandLine(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
  } catch {
    const ps = spawnSync('ps', ['-p', String(pid), '-o', 'command='], { encoding: 'utf8' });
    return ps.status === 0 ? ps.stdout : undefined;
  }
}

/** The pid in the pid file when that process is alive and is a Kafka broker; clears a stale file. */
function brokerPid(o: Resolved): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(o.pidFile, 'utf8').trim());
  } catch {
    return undefined;
  }
  if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
    const command = commandLine(pid);
    // A recycled pid belongs to some other process: only trust a broker on this data directory.
    if (command === undefined || (command.includes('kafka.Kafka') && command.includes(o.serverProperties))) {
      return pid;
    }
  }
  rmSync(o.pidFile, { force: true });
  return undefined;
}

/** The client port in the data directory's server.properties (that of a running broker). */
function configuredPort(o: Resolved): number | undefined {
  try {
    const match = /^listeners=PLAINTEXT:\/\/[^:]+:(\d+)/m.exec(readFileSync(o.serverProperties, 'utf8'));
    return match?.[1] ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The last lines the broker wrote since its latest start. */
async function logTail(o: Resolved, lines = 40): Promise<string> {
  try {
    const text = await readFile(o.brokerLog, 'utf8');
    const since = text.lastIndexOf(START_MARKER);
    return tail(since >= 0 ? text.slice(since) : text, lines);
  } catch {
    return '(no broker log)';
  }
}

export interface StartedKafka {
  /** `127.0.0.1:<port>`, ready for KAFKA_BROKERS. */
  brokers: string;
  /** The broker's pid, when it was started from this data directory. */
  pid: number | undefined;
  /** True when a broker was already answering and nothing was started. */
  alreadyRunning: boolean;
}

/**
 * Starts the broker (fetching and formatting first when needed) and resolves once it accepts
 * clients. Resolves at once when a broker already answers on the port.
 */
export async function startKafka(options: KafkaOptions = {}): Promise<StartedKafka> {
  const o = resolveOptions(options);
  await mkdir(o.dataDir, { recursive: true });
  return withStartLock(o, () => startLocked(o, options));
}

/**
 * Runs fn while holding `start.lock` in the data directory, so that concurrent starts (parallel
 * test workers, two terminals) neither format nor spawn twice: the later ones wait, then find the
 * broker running. A lock whose process is gone is taken over.
 */
async function withStartLock<T>(o: Resolved, fn: () => Promise<T>): Promise<T> {
  const lock = join(o.dataDir, 'start.lock');
  let announced = false;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    let holder = Number.NaN;
    let ageMs = 0;
    try {
      holder = Number(readFileSync(lock, 'utf8').trim());
      ageMs = Date.now() - statSync(lock).mtimeMs;
    } catch {
      continue; // released meanwhile
    }
    const stale = Number.isInteger(holder) && holder > 0 ? !processAlive(holder) : ageMs > 5000;
    if (stale) {
      rmSync(lock, { force: true });
      continue;
    }
    if (!announced) {
      o.log(`another kafka start (pid ${holder}) is under way for ${o.dataDir}: waiting for it`);
      announced = true;
    }
    await sleep(250);
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

async function startLocked(o: Resolved, options: KafkaOptions): Promise<StartedKafka> {
  const brokers = `${HOST}:${o.port}`;
  const started = Date.now();

  const existingPid = brokerPid(o);
  if (await kafkaAnswers(o.port)) {
    o.log(`a broker is already running on ${brokers}${existingPid ? ` (pid ${existingPid})` : ''}`);
    return { brokers, pid: existingPid, alreadyRunning: true };
  }

  let pid = existingPid;
  let exited: string | undefined;
  if (pid) {
    const runningPort = configuredPort(o);
    if (runningPort !== undefined && runningPort !== o.port) {
      throw new KafkaScriptError(
        `the broker started from ${o.dataDir} (pid ${pid}) listens on port ${runningPort}, not ${o.port}: stop it first (npm run kafka:stop) or use another KAFKA_DATA_DIR`,
      );
    }
    o.log(`broker process ${pid} is running but not answering yet: waiting for it`);
  } else {
    if (await portOpen(o.port)) {
      throw new KafkaScriptError(
        `port ${o.port} on ${HOST} is in use by something that is not a Kafka broker`,
      );
    }
    if (await portOpen(o.controllerPort)) {
      throw new KafkaScriptError(
        `controller port ${o.controllerPort} on ${HOST} is in use (set KAFKA_CONTROLLER_PORT to another port)`,
      );
    }
    checkJava();
    await ensureKafkaLibs(options);
    await writeFile(o.serverProperties, serverPropertiesText(o));
    await writeFile(o.log4jProperties, log4jPropertiesText());
    await formatIfNeeded(o);

    o.log(`starting the broker on ${brokers} (log ${o.brokerLog})`);
    const logFd = openSync(o.brokerLog, 'a');
    try {
      writeSync(logFd, `${START_MARKER} ${new Date().toISOString()} on ${brokers}\n`);
      const child = spawn(
        javaBin(),
        [
          ...o.heapOpts,
          '-XX:+UseG1GC',
          '-XX:MaxGCPauseMillis=20',
          '-Djava.awt.headless=true',
          `-Dlog4j.configuration=file:${o.log4jProperties}`,
          '-cp',
          classpath(o),
          'kafka.Kafka',
          o.serverProperties,
        ],
        { cwd: o.dataDir, detached: true, stdio: ['ignore', logFd, logFd] },
      );
      child.on('error', (error) => (exited = error.message));
      child.on('exit', (code, signal) => (exited = signal ? `killed by ${signal}` : `exit code ${code}`));
      child.unref();
      if (child.pid === undefined) {
        await sleep(100);
        throw new KafkaScriptError(`could not start java: ${exited ?? 'no pid'}`);
      }
      pid = child.pid;
      writeFileSync(o.pidFile, `${pid}\n`);
    } finally {
      closeSync(logFd);
    }
  }

  const deadline = Date.now() + o.startTimeoutMs;
  while (Date.now() < deadline) {
    if (await kafkaAnswers(o.port)) {
      o.log(`broker ready on ${brokers} (pid ${pid}) in ${seconds(started)}`);
      return { brokers, pid, alreadyRunning: false };
    }
    if (exited !== undefined || !processAlive(pid)) {
      rmSync(o.pidFile, { force: true });
      throw new KafkaScriptError(
        `the broker exited during start (${exited ?? 'process gone'}). Last lines of ${o.brokerLog}:\n${await logTail(o)}`,
      );
    }
    await sleep(500);
  }
  throw new KafkaScriptError(
    `the broker (pid ${pid}) did not accept clients on ${brokers} within ${o.startTimeoutMs / 1000} s; it is still running (npm run kafka:stop). Last lines of ${o.brokerLog}:\n${await logTail(o)}`,
  );
}

/** Sends a signal, ignoring a process that is already gone. */
function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ESRCH') throw error;
  }
}

/** Stops the broker started from this data directory: SIGTERM, then SIGKILL after the timeout. */
export async function stopKafka(options: KafkaOptions = {}): Promise<{ stopped: boolean }> {
  const o = resolveOptions(options);
  const pid = brokerPid(o);
  if (!pid) {
    const note = (await portOpen(o.port))
      ? ` (something still answers on ${HOST}:${o.port}, not started from here)`
      : '';
    o.log(`no broker running from ${o.dataDir}${note}`);
    return { stopped: false };
  }
  const started = Date.now();
  o.log(`stopping the broker (pid ${pid})`);
  signal(pid, 'SIGTERM');
  const deadline = Date.now() + o.stopTimeoutMs;
  while (processAlive(pid) && Date.now() < deadline) await sleep(200);
  if (processAlive(pid)) {
    o.log(`the broker did not stop within ${o.stopTimeoutMs / 1000} s: killing it`);
    signal(pid, 'SIGKILL');
    while (processAlive(pid)) await sleep(100);
  }
  rmSync(o.pidFile, { force: true });
  try {
    writeFileSync(o.brokerLog, `=== scripts/kafka.ts: broker ${pid} stopped ${new Date().toISOString()}\n`, {
      flag: 'a',
    });
  } catch {
    // the log is only for people
  }
  o.log(`stopped in ${seconds(started)}`);
  return { stopped: true };
}

export interface KafkaStatus {
  /** True when a broker answers clients on the port. */
  running: boolean;
  /** The pid of the broker started from this data directory, if its process is alive. */
  pid: number | undefined;
  brokers: string;
}

export async function kafkaStatus(options: KafkaOptions = {}): Promise<KafkaStatus> {
  const o = resolveOptions(options);
  const pid = brokerPid(o);
  return { running: await kafkaAnswers(o.port), pid, brokers: `${HOST}:${o.port}` };
}

async function main(command: string | undefined): Promise<number> {
  const o = resolveOptions();
  switch (command) {
    case 'start':
      await startKafka();
      return 0;
    case 'stop':
      await stopKafka();
      return 0;
    case 'status': {
      const status = await kafkaStatus();
      if (status.running) {
        o.log(
          `running on ${status.brokers}${status.pid ? ` (pid ${status.pid})` : ' (not started from here)'}`,
        );
        return 0;
      }
      o.log(
        status.pid
          ? `process ${status.pid} is alive but the broker does not answer on ${status.brokers} (starting?)`
          : `stopped (nothing answers on ${status.brokers})`,
      );
      return 1;
    }
    default:
      console.error('usage: tsx scripts/kafka.ts start|stop|status');
      return 2;
  }
}

const invokedPath = process.argv[1];
if (invokedPath && import.meta.url === pathToFileURL(resolve(invokedPath)).href) {
  try {
    process.exitCode = await main(process.argv[2]);
  } catch (error) {
    console.error(
      `kafka: ${error instanceof KafkaScriptError ? error.message : ((error as Error).stack ?? String(error))}`,
    );
    process.exitCode = 1;
  }
}
