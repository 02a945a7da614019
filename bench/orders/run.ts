/**
 * Order throughput benchmark (issue #7, part 2): npm run bench:orders.
 *
 * placeOrder with tok_visa from 50 concurrent clients, on real PostgreSQL, Kafka and RabbitMQ,
 * the gateway and the six subgraphs each in its own pinned process. Two modes, rounds
 * interleaved so that whatever else the machine does hits both alike:
 *  - `gateway`: through the gateway, with each customer's bearer token;
 *  - `direct` (the baseline): the same mutation straight to the orders subgraph, with the
 *    customer's service credential signed as the gateway signs it, so the gateway hop is the only
 *    difference (the saga's calls to users, products and payments are the same in both).
 * After every round the harness waits until every order has settled and reached analytics, and
 * checks that none was lost or duplicated. See bench/README.md for the knobs and the figures.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { LoadOptions, LoadResult } from '../shared/load.ts';
import { cpuSecondsOfCommands, machineBusySeconds } from '../shared/machineCpu.ts';
import { cpuSeconds, spawnPinned } from '../shared/processes.ts';
import {
  benchCommand,
  loadAverage,
  machineLines,
  median,
  packageVersion,
  writeResults,
} from '../shared/report.ts';
import { tail } from '../shared/system.ts';
import { sampleDatabaseActivity, type ConnectionStates, type DatabaseActivity } from './databaseActivity.ts';
import { provideBroker, resetNamespace, type Broker } from './broker.ts';
import { meanBetween, scrape } from './metrics.ts';
import { createRequestSource, type OrderRequestsOptions, type OrderResponses } from './orderRequests.ts';
import { seed, type Seeded } from './seed.ts';
import { SERVICES, startServices, type ServiceName, type ServiceProcess } from './services.ts';
import { SAGA_STEPS } from '../../subgraphs/orders/src/saga/sagaStore.ts';
import { createVerifier, latencySummary, type RoundCheck, type SalesCounts } from './verify.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const peers = resolve(root, 'bench/peers');
const env = process.env;

const MODES = {
  gateway: 'through the gateway',
  direct: 'orders subgraph directly (baseline)',
} as const;
type Mode = keyof typeof MODES;

/**
 * Default pinning on two cores: the gateway and the orders subgraph (the two busiest processes)
 * one core each; everything else, and the load generator, on both. BENCH_CPU_<SERVICE> and
 * BENCH_LOAD_CPU override.
 */
const DEFAULT_CPUS: Record<ServiceName, string> = {
  gateway: '0',
  orders: '1',
  users: '0,1',
  products: '0,1',
  payments: '0,1',
  analytics: '0,1',
  notifications: '0,1',
};

const number = (name: string, fallback: number) => Number(env[name] ?? fallback);
const settings = {
  rounds: number('BENCH_ROUNDS', 3),
  durationSeconds: number('BENCH_DURATION_S', 20),
  warmupSeconds: number('BENCH_WARMUP_S', 10),
  connections: number('BENCH_CONNECTIONS', 50),
  modes: (env['BENCH_MODES'] ?? 'gateway,direct').split(',').map((m) => m.trim()) as Mode[],
  products: number('BENCH_PRODUCTS', 100),
  customers: number('BENCH_CUSTOMERS', number('BENCH_CONNECTIONS', 50)),
  basePort: number('BENCH_BASE_PORT', 4500),
  kafkaPort: number('BENCH_KAFKA_PORT', 9192),
  drainTimeoutSeconds: number('BENCH_DRAIN_TIMEOUT_S', 120),
  cpus: Object.fromEntries(
    SERVICES.map((name) => [name, env[`BENCH_CPU_${name.toUpperCase()}`] ?? DEFAULT_CPUS[name]]),
  ) as Record<ServiceName, string>,
  loadCpu: env['BENCH_LOAD_CPU'] ?? '0,1',
  /** A directory: these services run under `node --cpu-prof` and write their profiles there. */
  cpuProfileDir: env['BENCH_CPU_PROF'] ? resolve(env['BENCH_CPU_PROF']) : undefined,
  cpuProfileServices: (env['BENCH_CPU_PROF_SERVICES'] ?? 'orders').split(',') as ServiceName[],
  output: env['BENCH_OUTPUT'] ?? join(root, 'bench/results/orders.md'),
};
const infrastructure = {
  databaseUrl: env['DATABASE_URL'] ?? 'postgres://postgres@127.0.0.1:5432/test',
  rabbitmqUrl: env['RABBITMQ_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672',
  schemaPrefix: env['BENCH_SCHEMA_PREFIX'] ?? 'bench_orders_',
  namespace: env['BENCH_NAMESPACE'] ?? 'bench-orders-',
  /** Each service connects to PostgreSQL as `<this><service>` (pg_stat_activity.application_name). */
  applicationPrefix: 'bench-orders-',
};
/** 50 clients from one address far exceed any sane per-client limit: raised for the run. */
const RAISED_RATE_LIMITS = {
  RATE_LIMIT_CAPACITY: '1000000',
  RATE_LIMIT_REFILL_PER_SECOND: '1000000',
  RATE_LIMIT_AUTH_CAPACITY: '1000',
  RATE_LIMIT_AUTH_REFILL_PER_SECOND: '1000',
};
const STOCK_PER_PRODUCT = 1_000_000_000;
const STEP_CALLEE = {
  VALIDATE_USER: 'users',
  RESERVE_STOCK: 'products',
  CHARGE_PAYMENT: 'payments',
  CONFIRM_ORDER: 'products',
} as const;
const PAYMENT_TOKEN = 'tok_visa';

const tsx = ['--import', import.meta.resolve('tsx')];
const work = mkdtempSync(join(tmpdir(), 'bench-orders-'));
const runId = Date.now().toString(36);
const log = (line: string) => console.log(line);

/** Seconds of the idle-system window, which measures each process's background CPU. */
const IDLE_SECONDS = 5;

/** CPU seconds so far per component, and for the whole machine. */
type CpuSnapshot = Record<string, number>;

/** Orders placed one at a time, per mode, after the warm-up. */
const ALONE_ORDERS = 20;
interface Alone {
  mode: Mode;
  latencyMs: number;
  check: RoundCheck;
}

interface Round {
  mode: Mode;
  label: string;
  /** The machine's load average (1 min) as the round ended. */
  loadAverage: string;
  load: LoadResult;
  responses: OrderResponses;
  check: RoundCheck;
  /** CPU seconds per component during the load. */
  cpu: CpuSnapshot;
  wallSeconds: number;
  /** Mean seconds per stage (Prometheus histograms of the gateway and orders). */
  stages: Record<string, number>;
  /** Each service's PostgreSQL connections during the load, mean per state. */
  connections: Record<string, ConnectionStates>;
  /** performance.now() at the start and end of the load. */
  window: [number, number];
}

async function resetSchemas(): Promise<void> {
  const client = new pg.Client({ connectionString: infrastructure.databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ nspname: string }>(
      `SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`,
      [`${infrastructure.schemaPrefix.replace(/_/g, '\\_')}%`],
    );
    for (const { nspname } of rows) await client.query(`DROP SCHEMA "${nspname}" CASCADE`);
  } finally {
    await client.end();
  }
}

function cpuReader(services: ServiceProcess[], broker: Broker) {
  /** CPU seconds so far per component; `at` is when the machine-wide figure was read. */
  return async (): Promise<{ cpu: CpuSnapshot; at: number }> => {
    const cpu: CpuSnapshot = {};
    for (const s of services) cpu[s.name] = await cpuSeconds(s.process.pid);
    if (broker.pid) cpu['Kafka'] = await cpuSeconds(broker.pid);
    cpu['RabbitMQ'] = await cpuSecondsOfCommands(['beam.smp']);
    const at = performance.now();
    cpu['machine'] = await machineBusySeconds();
    return { cpu, at };
  };
}

/**
 * Runs the load process and samples CPU from its "started" line (autocannon about to begin) to
 * its result line, so its own start-up is not counted. The wall time is the machine-wide
 * figure's, so "machine CPU" is busy time ÷ the same interval.
 */
function runLoad(
  options: LoadOptions,
  readCpu: () => Promise<{ cpu: CpuSnapshot; at: number }>,
): Promise<{
  result: LoadResult;
  cpu: CpuSnapshot;
  wallSeconds: number;
  endedAtMs: number;
  connections: Record<string, ConnectionStates>;
  /** performance.now() at the start and end of the load. */
  window: [number, number];
}> {
  const optionsFile = join(work, `load-${Date.now()}.json`);
  writeFileSync(optionsFile, JSON.stringify(options));
  const load = spawnPinned(
    settings.loadCpu,
    [...tsx, join(root, 'bench/shared/load.ts'), `@${optionsFile}`],
    {
      env,
      logFile: join(work, 'load.log'),
    },
  );
  return new Promise((resolvePromise, reject) => {
    let buffered = '';
    let before: ReturnType<typeof readCpu> | undefined;
    let stopSampling: (() => Promise<DatabaseActivity>) | undefined;
    load.child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      let newline: number;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (line.startsWith('{"started"')) {
          before = readCpu();
          stopSampling = sampleDatabaseActivity(infrastructure.databaseUrl, infrastructure.applicationPrefix);
        } else if (line.startsWith('{')) {
          const result = JSON.parse(line) as LoadResult;
          const endedAtMs = Date.now();
          void Promise.all([before!, readCpu(), stopSampling!()]).then(([start, end, database]) => {
            const cpu = Object.fromEntries(
              Object.entries(end.cpu).map(([k, v]) => [k, v - (start.cpu[k] ?? v)]),
            );
            cpu['load generator'] = result.cpuSeconds;
            cpu['PostgreSQL, this run'] = Object.values(database.backendCpuSeconds).reduce(
              (a, b) => a + b,
              0,
            );
            resolvePromise({
              result,
              cpu,
              wallSeconds: (end.at - start.at) / 1000,
              endedAtMs,
              connections: database.connections,
              window: [start.at, end.at],
            });
          }, reject);
        }
      }
    });
    void load.exited.then((code) => {
      if (code !== 0) reject(new Error(`load generator exited ${code}:\n${tail(load.logFile)}`));
    });
  });
}

/** CPU seconds per second of each component while no orders flow: polling loops, heartbeats, scrapes. */
async function idleWindow(readCpu: () => Promise<{ cpu: CpuSnapshot; at: number }>): Promise<CpuSnapshot> {
  const stopSampling = sampleDatabaseActivity(infrastructure.databaseUrl, infrastructure.applicationPrefix);
  const start = await readCpu();
  await sleep(IDLE_SECONDS * 1000);
  const end = await readCpu();
  const database = await stopSampling();
  const seconds = (end.at - start.at) / 1000;
  const rates = Object.fromEntries(
    Object.entries(end.cpu).map(([k, v]) => [k, (v - (start.cpu[k] ?? v)) / seconds]),
  );
  rates['PostgreSQL, this run'] =
    Object.values(database.backendCpuSeconds).reduce((a, b) => a + b, 0) / seconds;
  return rates;
}

async function main() {
  const loadAtStart = loadAverage();
  const code = codeVersion();
  log(`bench:orders ${JSON.stringify(settings)}\nwork directory ${work}`);

  const broker = await provideBroker({
    brokers: env['KAFKA_BROKERS'],
    port: settings.kafkaPort,
    dataDir: join(work, 'kafka'),
    log,
  });
  const secrets = {
    JWT_SECRET: randomBytes(48).toString('base64'),
    SERVICE_SECRET: randomBytes(48).toString('base64'),
    ADMIN_PASSWORD: randomBytes(12).toString('base64url'),
  };
  let services: ServiceProcess[] = [];
  const rounds: Round[] = [];
  const alone: Alone[] = [];
  let rowsPerOrder: Record<string, number> = {};
  const startupNotes: string[] = [];
  /** CPU seconds per second of each component with no orders flowing (pollers, heartbeats). */
  let idleCpu: CpuSnapshot = {};
  let seeded: Seeded | undefined;
  let stockProblems: string[] = [];
  let servers = { pg: '?', kafka: '?', rabbit: '?' };
  try {
    await resetSchemas();
    await resetNamespace(broker.brokers, infrastructure.namespace);
    servers = await serverVersions(broker.brokers);
    const serviceEnvironment: NodeJS.ProcessEnv = {
      ...env,
      ...secrets,
      ...RAISED_RATE_LIMITS,
      NODE_ENV: 'production',
      LOG_LEVEL: 'warn',
      HOST: '127.0.0.1',
      APOLLO_TELEMETRY_DISABLED: 'true',
      DATABASE_URL: infrastructure.databaseUrl,
      DATABASE_SCHEMA_PREFIX: infrastructure.schemaPrefix,
      KAFKA_BROKERS: broker.brokers,
      RABBITMQ_URL: infrastructure.rabbitmqUrl,
      MESSAGING_NAMESPACE: infrastructure.namespace,
    };
    log('starting the gateway and six subgraphs');
    services = await startServices({
      root,
      work,
      basePort: settings.basePort,
      cpus: settings.cpus,
      env: serviceEnvironment,
      onRestart: (name, serviceLog) => {
        const note = `${name} exited while starting (${fatalMessage(serviceLog)}) and was started again`;
        startupNotes.push(note);
        log(`  ${note}`);
      },
      // Its own application_name per service, so the harness can tell their connections apart.
      envFor: (name) => ({
        DATABASE_URL: withApplicationName(
          infrastructure.databaseUrl,
          `${infrastructure.applicationPrefix}${name}`,
        ),
      }),
      nodeFlags: Object.fromEntries(
        settings.cpuProfileDir
          ? settings.cpuProfileServices.map((name) => [
              name,
              // A directory per service and Node's own file names: under tsx a process writes two
              // profiles (main thread and loader thread), and one fixed name would let the
              // loader's overwrite the main thread's.
              ['--cpu-prof', '--cpu-prof-dir', join(settings.cpuProfileDir!, `${name}-${runId}`)],
            ])
          : [],
      ),
    });
    const byName = Object.fromEntries(services.map((s) => [s.name, s])) as Record<
      ServiceName,
      ServiceProcess
    >;
    log('seeding products and customers through the gateway');
    seeded = await seed({
      gatewayUrl: byName.gateway.url,
      adminEmail: env['ADMIN_EMAIL'] ?? 'admin@example.com',
      adminPassword: secrets.ADMIN_PASSWORD,
      serviceSecret: secrets.SERVICE_SECRET,
      products: settings.products,
      stock: STOCK_PER_PRODUCT,
      customers: settings.customers,
      runId,
    });
    const verifier = createVerifier({
      databaseUrl: infrastructure.databaseUrl,
      schemaPrefix: infrastructure.schemaPrefix,
      gatewayUrl: byName.gateway.url,
      adminToken: seeded.adminToken,
      timeoutMs: settings.drainTimeoutSeconds * 1000,
    });
    const readCpu = cpuReader(services, broker);

    const urlOf = (mode: Mode) => (mode === 'gateway' ? byName.gateway.url : byName.orders.url);
    const requestOptions = (mode: Mode, keyPrefix: string, seedNumber: number): OrderRequestsOptions => ({
      auth: mode === 'gateway' ? 'bearer' : 'credential',
      customers: seeded!.customers,
      productIds: seeded!.products.map((p) => p.id),
      keyPrefix,
      paymentToken: PAYMENT_TOKEN,
      seed: seedNumber,
    });

    /** One client placing one order at a time: the latency floor, with no queueing anywhere. */
    const oneAtATime = async (mode: Mode): Promise<Alone> => {
      const keyPrefix = `${runId}:alone-${mode}:`;
      const salesBefore = await verifier.salesCounts();
      const source = createRequestSource(requestOptions(mode, keyPrefix, 0));
      const latencies: number[] = [];
      for (let i = 0; i < ALONE_ORDERS; i++) {
        const { body, headers } = source.next();
        const started = performance.now();
        const response = await fetch(urlOf(mode), {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body,
        });
        const text = await response.text();
        latencies.push(performance.now() - started);
        source.onResponse?.(response.status, text, performance.timeOrigin + performance.now());
      }
      const responses = source.recorded!() as OrderResponses;
      const check = await verifier.checkRound(keyPrefix, responses, Math.max(...responses.atMs), salesBefore);
      log(
        `  ${ALONE_ORDERS} orders one at a time (${mode}): median ${fixed(median(latencies))} ms; response→analytics median ${fixed(median(check.responseToAnalyticsMs), 0)} ms${check.problems.length ? ` PROBLEMS: ${check.problems.join('; ')}` : ''}`,
      );
      return { mode, latencyMs: median(latencies), check };
    };

    const round = async (mode: Mode, label: string, durationSeconds: number, seedNumber: number) => {
      const keyPrefix = `${runId}:${label}:`;
      const salesBefore: SalesCounts = await verifier.salesCounts();
      const scrapeBoth = async () => ({
        gateway: await scrape(byName.gateway.metricsUrl),
        orders: await scrape(byName.orders.metricsUrl),
      });
      const metricsBefore = await scrapeBoth();
      const { result, cpu, wallSeconds, endedAtMs, connections, window } = await runLoad(
        {
          url: urlOf(mode),
          headers: {},
          connections: settings.connections,
          durationSeconds,
          source: {
            module: join(here, 'orderRequests.ts'),
            options: requestOptions(mode, keyPrefix, seedNumber),
          },
        },
        readCpu,
      );
      const metricsAfter = await scrapeBoth();
      const responses = result.recorded as OrderResponses;
      const check = await verifier.checkRound(keyPrefix, responses, endedAtMs, salesBefore);
      const mean = (service: 'gateway' | 'orders', histogram: string, labels: Record<string, string>) =>
        meanBetween(metricsBefore[service], metricsAfter[service], histogram, labels).meanSeconds;
      const stages: Record<string, number> = {
        // The gateway's own figures mean something only when it carried the load.
        gatewayPlaceOrder:
          mode === 'gateway'
            ? mean('gateway', 'graphql_request_duration_seconds', { operation: 'PlaceOrder' })
            : NaN,
        gatewayToOrders:
          mode === 'gateway'
            ? mean('gateway', 'gateway_subgraph_request_duration_seconds', { subgraph: 'orders' })
            : NaN,
        // Named PlaceOrder__orders__0 when the gateway sends it.
        ordersPlaceOrder: mean('orders', 'graphql_request_duration_seconds', { operation: 'PlaceOrder*' }),
      };
      for (const step of SAGA_STEPS) stages[step] = mean('orders', 'saga_step_duration_seconds', { step });
      const problems = check.problems.length ? ` PROBLEMS: ${check.problems.join('; ')}` : '';
      log(
        `  ${label}: ${fixed(result.requestsPerSecond)} orders/s, p50 ${fixed(result.p50Ms)} ms, p95 ${fixed(result.p95Ms)} ms, ` +
          `${check.ordersInDb} orders (${check.unanswered} in flight at the end, ${check.returnedPending} answered PENDING), machine CPU ${fixed((100 * cpu['machine']!) / wallSeconds, 0)} % (of 200), ` +
          `response→analytics p50 ${fixed(latencySummary(check.responseToAnalyticsMs).p50, 0)} ms, caught up ${fixed(check.publicCatchUpMs, 0)} ms after the end${problems}`,
      );
      return {
        mode,
        label,
        loadAverage: loadAverage().split(' ')[0]!,
        load: result,
        responses,
        check,
        cpu,
        wallSeconds,
        stages,
        connections,
        window,
      } satisfies Round;
    };

    const workBefore = await verifier.databaseWork();
    for (const mode of settings.modes) {
      if (!MODES[mode]) throw new Error(`unknown mode ${mode}; known: ${Object.keys(MODES).join(', ')}`);
      log(`warming up (${mode})`);
      await round(mode, `warmup-${mode}`, settings.warmupSeconds, 0);
    }
    for (const mode of settings.modes) alone.push(await oneAtATime(mode));
    log(`measuring the idle system (${IDLE_SECONDS} s)`);
    idleCpu = await idleWindow(readCpu);
    for (let i = 1; i <= settings.rounds; i++) {
      for (const mode of settings.modes)
        rounds.push(await round(mode, `${mode}-${i}`, settings.durationSeconds, i));
    }
    stockProblems = await verifier.checkStock(settings.products * STOCK_PER_PRODUCT);
    // PostgreSQL publishes idle backends' counts within 10 s.
    await sleep(11_000);
    const workAfter = await verifier.databaseWork();
    const placed = workAfter.orders - workBefore.orders;
    rowsPerOrder = Object.fromEntries(
      Object.entries(workAfter.rows).map(([service, n]) => [
        service,
        (n - (workBefore.rows[service] ?? 0)) / placed,
      ]),
    );
    await verifier.close();
  } finally {
    log('stopping');
    await Promise.all(services.map((s) => s.process.stop()));
    await broker.stop();
  }

  const markdown = report({
    rounds,
    alone,
    rowsPerOrder,
    idleCpu,
    startupNotes,
    code,
    profiled: settings.cpuProfileDir
      ? services
          .filter((x) => settings.cpuProfileServices.includes(x.name))
          .map((x) => ({
            name: x.name,
            file: join(settings.cpuProfileDir!, `${x.name}-${runId}`),
            spawnedAt: x.spawnedAt,
          }))
      : [],
    versions: `Node ${process.version}; PostgreSQL ${servers.pg}, Kafka ${servers.kafka}, RabbitMQ ${servers.rabbit}; @apollo/gateway ${packageVersion(root, '@apollo/gateway')}, @apollo/server ${packageVersion(root, '@apollo/server')}, kafkajs ${packageVersion(root, 'kafkajs')}, amqplib ${packageVersion(root, 'amqplib')}, pg ${packageVersion(root, 'pg')}; autocannon ${packageVersion(peers, 'autocannon')}`,
    loadAtStart,
    loadAtEnd: loadAverage(),
    broker,
    stockProblems,
  });
  writeResults(settings.output, markdown);
  console.log(`\n${markdown}\nwritten to ${settings.output}`);
  const checks = [...rounds, ...alone].map((r) => r.check);
  if (checks.some((c) => c.problems.length) || stockProblems.length) process.exitCode = 1;
}

/** The message of the last fatal (pino level 60) line of a service's log. */
function fatalMessage(serviceLog: string): string {
  const line = serviceLog
    .split('\n')
    .reverse()
    .find((l) => l.includes('"level":60'));
  if (!line) return 'no fatal log line';
  try {
    const entry = JSON.parse(line) as { msg?: string; err?: { message?: string } };
    return entry.err?.message ?? entry.msg ?? line.slice(0, 200);
  } catch {
    return line.slice(0, 200);
  }
}

function withApplicationName(url: string, name: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set('application_name', name);
  return parsed.toString();
}

/** The commit measured, and whether the services' code had uncommitted changes (the working tree runs). */
function codeVersion(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'gateway', 'subgraphs', 'lib', 'scripts'],
      {
        cwd: root,
      },
    )
      .toString()
      .split('\n')
      .filter(Boolean).length;
    return `commit ${commit}${dirty ? ` plus uncommitted changes to ${dirty} files of gateway/, subgraphs/, lib/, scripts/ (the working tree is what ran)` : ''}`;
  } catch {
    return 'not a git checkout';
  }
}

/** PostgreSQL's, Kafka's and RabbitMQ's versions, for the results file. */
async function serverVersions(brokers: string): Promise<{ pg: string; kafka: string; rabbit: string }> {
  const client = new pg.Client({ connectionString: infrastructure.databaseUrl });
  await client.connect();
  const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
  await client.end();
  const { KAFKA_VERSION } = await import('../../scripts/kafka.ts');
  const amqp = await import('amqplib');
  let rabbit = '?';
  try {
    const connection = await amqp.connect(infrastructure.rabbitmqUrl);
    rabbit = String(connection.connection.serverProperties['version'] ?? '?');
    await connection.close();
  } catch {
    // the services will say what is wrong
  }
  return {
    pg: rows[0]?.server_version ?? '?',
    kafka: env['KAFKA_BROKERS'] ? `at ${brokers}` : KAFKA_VERSION,
    rabbit,
  };
}

const fixed = (value: number, digits = 1) => (Number.isFinite(value) ? value.toFixed(digits) : 'n/a');

function report(input: {
  rounds: Round[];
  alone: Alone[];
  rowsPerOrder: Record<string, number>;
  idleCpu: CpuSnapshot;
  startupNotes: string[];
  versions: string;
  code: string;
  profiled: { name: string; file: string; spawnedAt: number }[];
  loadAtStart: string;
  loadAtEnd: string;
  broker: Broker;
  stockProblems: string[];
}): string {
  const { rounds } = input;
  const byMode = settings.modes.map((mode) => {
    const mine = rounds.filter((r) => r.mode === mode);
    const m = (f: (r: Round) => number) => median(mine.map(f));
    const analytics = mine.map((r) => latencySummary(r.check.responseToAnalyticsMs));
    const pipeline = mine.map((r) => latencySummary(r.check.confirmToAnalyticsMs));
    return {
      mode,
      rounds: mine,
      ops: m((r) => r.load.requestsPerSecond),
      p50: m((r) => r.load.p50Ms),
      p95: m((r) => r.load.p95Ms),
      p99: m((r) => r.load.p99Ms),
      mean: m((r) => r.load.meanMs),
      requests: mine.reduce((n, r) => n + r.load.requests, 0),
      errors: mine.reduce((n, r) => n + r.load.transportErrors + r.load.non2xx + r.load.graphqlErrors, 0),
      problems:
        mine.reduce((n, r) => n + r.check.problems.length, 0) +
        (input.alone.find((a) => a.mode === mode)?.check.problems.length ?? 0),
      alone: input.alone.find((a) => a.mode === mode),
      orders: mine.reduce((n, r) => n + r.check.ordersInDb, 0),
      analyticsP50: median(analytics.map((a) => a.p50)),
      analyticsP95: median(analytics.map((a) => a.p95)),
      analyticsP99: median(analytics.map((a) => a.p99)),
      pipelineP50: median(pipeline.map((a) => a.p50)),
      pipelineP95: median(pipeline.map((a) => a.p95)),
      catchUp: m((r) => r.check.publicCatchUpMs),
      machine: m((r) => (100 * r.cpu['machine']!) / r.wallSeconds),
      // Per order placed during the round (answered, or in flight at its end).
      // Net of the component's idle rate: what the orders themselves cost.
      netCpuPerOrder: (component: string) =>
        m(
          (r) =>
            (1000 * ((r.cpu[component] ?? NaN) - (input.idleCpu[component] ?? 0) * r.wallSeconds)) /
            Math.max(1, r.check.ordersInDb),
        ),
      cpuPerOrder: (component: string) =>
        m((r) => (1000 * (r.cpu[component] ?? NaN)) / Math.max(1, r.check.ordersInDb)),
      stage: (name: string) => m((r) => 1000 * (r.stages[name] ?? NaN)),
    };
  });
  const baseline = byMode.find((r) => r.mode === 'direct');
  const ratio = (a: number, b: number | undefined) => (b === undefined ? 'n/a' : `${(a / b).toFixed(2)}×`);
  const table = [
    '| mode | orders/s | p50 ms | p95 ms | p99 ms | errors / requests | lost or duplicated | response → analytics p50 / p95 / p99 ms | analytics caught up after the round | machine CPU (of 200 %) | orders/s ÷ baseline | p95 ÷ baseline | one order at a time: ms, → analytics ms |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...byMode.map(
      (r) =>
        `| ${MODES[r.mode]} | ${fixed(r.ops)} | ${fixed(r.p50)} | ${fixed(r.p95)} | ${fixed(r.p99)} | ${r.errors} / ${r.requests} | ${r.problems === 0 ? '0' : `${r.problems} problems (below)`} | ${fixed(r.analyticsP50, 0)} / ${fixed(r.analyticsP95, 0)} / ${fixed(r.analyticsP99, 0)} | ${fixed(r.catchUp, 0)} ms | ${fixed(r.machine, 0)} % | ${r === baseline ? '—' : ratio(r.ops, baseline?.ops)} | ${r === baseline ? '—' : ratio(r.p95, baseline?.p95)} | ${fixed(r.alone?.latencyMs ?? NaN)}, ${fixed(median(r.alone?.check.responseToAnalyticsMs ?? []), 0)} |`,
    ),
  ];
  const gateway = byMode.find((r) => r.mode === 'gateway');
  const share =
    gateway && baseline
      ? `The gateway's share: ${fixed(gateway.p50 - baseline.p50)} ms of the gateway mode's ${fixed(gateway.p50)} ms p50 (${fixed((100 * (gateway.p50 - baseline.p50)) / gateway.p50, 0)} %), and ${fixed(100 * (1 - gateway.ops / baseline.ops), 0)} % of the baseline's throughput.`
      : '';
  const target = byMode
    .map(
      (r) =>
        `${MODES[r.mode]}: ${r.ops >= 1000 && r.p95 <= 100 && r.problems === 0 ? 'met' : 'missed'} (${fixed(r.ops)} orders/s, p95 ${fixed(r.p95)} ms, ${r.problems} lost/duplicated problems)`,
    )
    .join('; ');

  const stageRows: [string, string, (r: (typeof byMode)[number]) => number][] = [
    ['client: placeOrder round trip (mean)', 'autocannon', (r) => r.mean],
    [
      'gateway: PlaceOrder, receipt to response (mean)',
      'gateway graphql_request_duration_seconds',
      (r) => r.stage('gatewayPlaceOrder'),
    ],
    [
      'gateway → orders fetch (mean)',
      'gateway gateway_subgraph_request_duration_seconds{subgraph="orders"}',
      (r) => r.stage('gatewayToOrders'),
    ],
    [
      'orders: PlaceOrder, receipt to response (mean)',
      'orders graphql_request_duration_seconds',
      (r) => r.stage('ordersPlaceOrder'),
    ],
    ...SAGA_STEPS.map((step): [string, string, (r: (typeof byMode)[number]) => number] => [
      `saga step ${step} (its call to ${STEP_CALLEE[step]}, mean)`,
      'orders saga_step_duration_seconds',
      (r) => r.stage(step),
    ]),
    [
      'orders itself: pricing call to products, the order insert, the saga transitions (mean, by difference)',
      'orders PlaceOrder − the four steps',
      (r) => r.stage('ordersPlaceOrder') - SAGA_STEPS.reduce((sum, step) => sum + r.stage(step), 0),
    ],
  ];
  const stages = [
    `| stage | source | ${byMode.map((r) => `${r.mode} ms`).join(' | ')} |`,
    `| --- | --- | ${byMode.map(() => '---:').join(' | ')} |`,
    ...stageRows.map(
      ([name, source, f]) => `| ${name} | ${source} | ${byMode.map((r) => fixed(f(r), 2)).join(' | ')} |`,
    ),
  ];
  /** This system's own CPU: its seven processes, its PostgreSQL connections, the broker it uses. */
  const systemComponents = [...SERVICES, 'PostgreSQL, this run', 'Kafka', 'RabbitMQ'];
  const present = (c: string) => rounds.some((r) => r.cpu[c] !== undefined);
  const systemPerOrder = (r: (typeof byMode)[number]) =>
    systemComponents.filter(present).reduce((sum, c) => sum + r.netCpuPerOrder(c), 0);
  const label: Record<string, string> = {
    'PostgreSQL, this run': "PostgreSQL: this run's connections (their server processes)",
    Kafka: 'Kafka broker',
    RabbitMQ: 'RabbitMQ (the shared server: every user)',
    machine: 'whole machine: busy time of every process, other work included (gross)',
  };
  const pinning = (c: string) =>
    (settings.cpus as Record<string, string>)[c] ?? (c === 'load generator' ? settings.loadCpu : 'unpinned');
  const idlePercent = (c: string) =>
    input.idleCpu[c] === undefined ? '' : `${fixed(100 * input.idleCpu[c], 1)} %`;
  const cpu = [
    `| component | pinned to | idle, no orders (% of a core) | ${byMode.map((r) => `${r.mode}: CPU ms per order`).join(' | ')} |`,
    `| --- | --- | ---: | ${byMode.map(() => '---:').join(' | ')} |`,
    ...systemComponents
      .filter(present)
      .map(
        (c) =>
          `| ${label[c] ?? c} | ${pinning(c)} | ${idlePercent(c)} | ${byMode.map((r) => fixed(r.netCpuPerOrder(c), 2)).join(' | ')} |`,
      ),
    `| **this system** (the rows above) | | ${fixed(100 * systemComponents.reduce((sum, c) => sum + (input.idleCpu[c] ?? 0), 0), 1)} % | ${byMode.map((r) => `**${fixed(systemPerOrder(r), 1)}**`).join(' | ')} |`,
    ...['load generator', 'machine']
      .filter(present)
      .map(
        (c) =>
          `| ${label[c] ?? c} | ${pinning(c)} | ${c === 'machine' ? idlePercent(c) : ''} | ${byMode.map((r) => fixed(r.cpuPerOrder(c), 2)).join(' | ')} |`,
      ),
  ];
  const ceiling = byMode
    .map(
      (r) =>
        `${r.mode} ${fixed((cpus().length * 1000) / systemPerOrder(r), 0)} orders/s (${fixed(systemPerOrder(r), 1)} CPU ms per order)`,
    )
    .join(', ');
  const states = ['running', 'waitingOnLock', 'idleInTransaction', 'idle'] as const;
  const connections = [
    `| service | ${byMode.map((r) => `${r.mode}: running / waiting on a lock / idle in transaction / idle`).join(' | ')} |`,
    `| --- | ${byMode.map(() => '---:').join(' | ')} |`,
    ...SERVICES.filter((name) => name !== 'gateway').map(
      (name) =>
        `| ${name} | ${byMode
          .map((r) =>
            states.map((k) => fixed(median(r.rounds.map((x) => x.connections[name]?.[k] ?? 0)))).join(' / '),
          )
          .join(' | ')} |`,
    ),
  ];
  const checks = [
    '| round | load avg | orders/s | p95 ms | responses (answered PENDING) | orders in DB (in flight at the end) | CONFIRMED | analytics facts | salesMetrics +total / +confirmed | payments captured | emails sent | pipeline confirm → analytics p50 / p95 ms | problems |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rounds.map((r) => {
      const c = r.check;
      const p = latencySummary(c.confirmToAnalyticsMs);
      return `| ${r.label} | ${r.loadAverage} | ${fixed(r.load.requestsPerSecond)} | ${fixed(r.load.p95Ms)} | ${c.responses} (${c.returnedPending}) | ${c.ordersInDb} (${c.unanswered}) | ${c.confirmed} | ${c.analyticsFacts} | ${c.salesMetricsTotalDelta} / ${c.salesMetricsConfirmedDelta} | ${c.captured} | ${c.emailsSent} | ${fixed(p.p50, 0)} / ${fixed(p.p95, 0)} | ${c.problems.join('; ') || 'none'} |`;
    }),
  ];
  const failures = rounds.flatMap((r) =>
    Object.entries(r.responses.failures).map(
      ([code, f]) => `- ${r.label}: ${f.count} × ${code}: ${f.example}`,
    ),
  );

  return [
    '# Orders: placeOrder throughput on real PostgreSQL, Kafka and RabbitMQ',
    '',
    `Run ${new Date().toISOString()} with \`${benchCommand('bench:orders')}\`.`,
    '',
    ...machineLines(input.versions).map((l) =>
      l.startsWith('- Load average at start')
        ? `- Load average (1, 5, 15 min) at start: ${input.loadAtStart}; at the end: ${input.loadAtEnd}; after each round in the table below (the machine is shared: other work ran during the benchmark)`
        : l,
    ),
    `- Code: ${input.code}`,
    `- Processes: the gateway and the six subgraphs each in its own process (\`gateway/src/main.ts\`, \`subgraphs/<name>/src/main.ts\`), \`NODE_ENV=production\`, \`LOG_LEVEL=warn\`, pinned with taskset: ${SERVICES.map((s) => `${s} ${settings.cpus[s]}`).join(', ')}; load generator ${settings.loadCpu}. PostgreSQL (${infrastructure.databaseUrl.replace(/\/\/[^@]*@/, '//')}, schemas \`${infrastructure.schemaPrefix}*\`), RabbitMQ and Kafka (${input.broker.origin}) unpinned; MESSAGING_NAMESPACE \`${infrastructure.namespace}\``,
    ...input.startupNotes.map((note) => `- Start-up: ${note}`),
    `- Raised for the run (50 clients from one address): ${Object.entries(RAISED_RATE_LIMITS)
      .map(([k, v]) => `\`${k}=${v}\``)
      .join(
        ', ',
      )}. Everything else at its default (\`ORDER_SAGA_WAIT_MS\` 5000: placeOrder answers once the saga ended)`,
    `- Load: ${settings.connections} connections (autocannon, own process), each request a new order of 1–3 of ${settings.products} products × 1–3 units, \`${PAYMENT_TOKEN}\`, a unique idempotencyKey, round-robin over ${settings.customers} customers; warm-up ${settings.warmupSeconds} s per mode, then ${settings.rounds} rounds × ${settings.durationSeconds} s per mode, modes interleaved; figures are medians of the rounds; errors = transport errors (timeouts included) + non-2xx + responses with GraphQL errors, summed`,
    '',
    ...table,
    '',
    `Target (1,000 orders/s with p95 ≤ 100 ms, zero lost or duplicated orders): ${target}. ${share}`,
    '',
    '"Lost or duplicated" counts failed checks after each round, once every saga had ended and analytics had caught up: every answered order is in the orders database, exactly one order per request (idempotency key), all CONFIRMED, each with one captured payment, one confirmation email sent over RabbitMQ, one analytics fact with the same status, and `salesMetrics` (public API) grown by exactly the round\'s orders; at the end, stock conserved (what left the shelves is what confirmed orders bought, nothing left reserved).' +
      (input.stockProblems.length ? ` Stock: ${input.stockProblems.join('; ')}.` : ' Stock: conserved.'),
    '',
    '"Response → analytics": for every answered order, the time from its response reaching the client to analytics applying its OrderConfirmed (the `now()` of the consumer\'s transaction, `order_facts.updated_at`; same machine clock). "Caught up": from the end of the round (the load generator stopped) until `salesMetrics` (polled through the gateway every 50 ms) counted every order of the round. ' +
      `"One order at a time": after the warm-up, ${ALONE_ORDERS} orders placed one after another by a single client (median latency, and median response → analytics): the floor, without queueing.`,
    '',
    '## Where the time goes',
    '',
    "Mean per order, median of the rounds, from the services' Prometheus histograms (scraped before and after each round):",
    '',
    ...stages,
    '',
    `CPU time per order placed, from \`/proc/<pid>/stat\` over the load window, net of what each process burns with no orders flowing (measured for ${IDLE_SECONDS} s after the one-at-a-time orders: pollers, heartbeats):`,
    '',
    ...cpu,
    '',
    `At this system's CPU cost per order, the machine's ${cpus().length} cores could complete at most: ${ceiling}, with nothing else running (a ceiling: CPU time measured while other work competed for the cores, and so for caches, is likely higher than it would be on a quiet machine).`,
    '',
    "PostgreSQL connections of each service during the load (mean of pg_stat_activity sampled every 100 ms; each service's pool opens at most 10): all of a pool's connections busy means requests queue for one; idle in transaction means the database waits for the service.",
    '',
    ...connections,
    '',
    `Database rows written (inserted, updated, deleted) per order, whole run (${SERVICES.filter(
      (s) => s !== 'gateway',
    )
      .map((s) => `${s} ${fixed(input.rowsPerOrder[s] ?? NaN)}`)
      .join(', ')}; from pg_stat_user_tables of each service's schema).`,
    '',
    '## Rounds',
    '',
    ...checks,
    '',
    ...(failures.length ? ['Failed responses:', '', ...failures, ''] : []),
    ...input.profiled.flatMap((p) => [
      `CPU profiles of ${p.name}: \`${p.file}/\` (written when it stopped; the main thread's is the one with thread id 0, which the summariser picks given the directory); the rounds ran from ${rounds.map((r) => `${r.label} ${fixed((r.window[0] - p.spawnedAt) / 1000, 0)}–${fixed((r.window[1] - p.spawnedAt) / 1000, 0)} s`).join(', ')} after its start: \`node --import tsx bench/profile/summarizeProfile.ts <directory> 40 <from> <to>\`.`,
      '',
    ]),
  ].join('\n');
}

await main();
