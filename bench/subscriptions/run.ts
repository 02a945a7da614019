/**
 * Subscription fan-out benchmark (issue #7, part 3): npm run bench:subscriptions.
 *
 * N graphql-ws clients subscribe through the gateway to salesMetricsUpdated (with
 * topProducts { product { name } }, an entity fetch to products per event) and
 * orderStatusChanged, while a driver places orders through the gateway at a steady rate. For
 * several N, and for a baseline of the same clients subscribed straight to the analytics and
 * orders subgraphs (signed service credential, no gateway): delivered events/s, latency from
 * placeOrder's return to each client's receipt, upstream subscriptions, missed updates, and the
 * serving process's CPU and RSS. The gateway runs alone on GATEWAY_CPU; the system (subgraphs),
 * the clients, the driver and this harness share SIDE_CPU. See bench/README.md.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { createServiceCredentials, SERVICE_CREDENTIAL_HEADER, type Viewer } from '../../lib/auth/tokens.ts';
import { SUBGRAPH_NAMES } from '../../lib/config.ts';
import { bearer, postGraphQL } from '../shared/graphql.ts';
import {
  cpuSeconds,
  hardOpenFilesLimit,
  pinSelf,
  rssMiB,
  runPinned,
  samplePeakRss,
  spawnPinned,
  type PinnedProcess,
} from '../shared/processes.ts';
import { benchCommand, loadAverage, machineLines, packageVersion, writeResults } from '../shared/report.ts';
import { startSystemProcess, tail, waitForGraphQL } from '../shared/system.ts';
import type {
  ClientsCommand,
  ClientsMessage,
  ClientsOptions,
  ProgressMessage,
  ReportMessage,
  SocketSpec,
} from './clients.ts';
import type { DriverOptions, DriverResult } from './driver.ts';
import { createLatencyHistogram } from './latencyHistogram.ts';
import { METRICS_QUERY, METRICS_SUBSCRIPTION, STATUS_SUBSCRIPTION } from './operations.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const env = process.env;
const settings = {
  clientCounts: (env['BENCH_CLIENTS'] ?? '1000,5000,10000').split(',').map((n) => Number(n.trim())),
  ordersPerSecond: Number(env['BENCH_ORDER_RATE'] ?? 1),
  durationSeconds: Number(env['BENCH_DURATION_S'] ?? 15),
  warmupOrders: Number(env['BENCH_WARMUP_ORDERS'] ?? 3),
  drainTimeoutSeconds: Number(env['BENCH_DRAIN_TIMEOUT_S'] ?? 300),
  baseline: (env['BENCH_BASELINE'] ?? 'direct') !== 'none',
  connectConcurrency: Number(env['BENCH_CONNECT_CONCURRENCY'] ?? 100),
  port: Number(env['BENCH_PORT'] ?? 4600),
  gatewayCpu: env['BENCH_GATEWAY_CPU'] ?? '0',
  sideCpu: env['BENCH_SIDE_CPU'] ?? '1',
  /** A directory: the gateway runs with --cpu-prof and writes its profile there (gateway rows). */
  cpuProfileDir: env['BENCH_CPU_PROF'] ? resolve(env['BENCH_CPU_PROF']) : undefined,
  /**
   * A directory: the gateway writes a heap snapshot there before the clients connect and once
   * they are connected and warmed up (gateway rows; writing one stalls the gateway for seconds).
   */
  heapSnapshotDir: env['BENCH_HEAP_SNAPSHOT'] ? resolve(env['BENCH_HEAP_SNAPSHOT']) : undefined,
  output: env['BENCH_OUTPUT'] ?? join(root, 'bench/results/subscriptions.md'),
};
/** Up to 64 Ki descriptors per process, within the hard limit (no CAP_SYS_RESOURCE in a container). */
const openFiles = Math.min(65_536, hardOpenFilesLimit());
/** Descriptors a process keeps for everything but the sockets under test. */
const FD_RESERVE = 1_000;
const MAX_SOCKETS_PER_CLIENT_PROCESS = Math.min(10_000, openFiles - FD_RESERVE);
const work = mkdtempSync(join(tmpdir(), 'bench-subscriptions-'));
const tsx = ['--import', import.meta.resolve('tsx')];

const secrets = {
  JWT_SECRET: randomBytes(48).toString('base64'),
  SERVICE_SECRET: randomBytes(48).toString('base64'),
  ADMIN_PASSWORD: randomBytes(12).toString('base64url'),
};
/**
 * Every client is the one admin, from one address: the per-caller rate limit (each subscription
 * and each placeOrder takes a token) would refuse all but the first 200. Raised for the run.
 */
const raisedLimits = {
  RATE_LIMIT_CAPACITY: '1000000000',
  RATE_LIMIT_REFILL_PER_SECOND: '1000000000',
};
const processEnv = {
  ...env,
  ...secrets,
  ...raisedLimits,
  NODE_ENV: 'production',
  APOLLO_TELEMETRY_DISABLED: 'true',
  LOG_LEVEL: 'warn',
  HOST: '127.0.0.1',
  DATA_DIR: ':memory:',
};

interface SystemReady {
  subgraphs: Record<string, string>;
  admin: { id: string; token: string };
  productIds: string[];
}

type Path = 'gateway' | 'direct';

interface Row {
  path: Path;
  clients: number;
  skipped?: string;
  sockets?: number;
  failedSockets?: number;
  connectSeconds?: number;
  /** CPU the serving process spent per client while they connected and subscribed. */
  connectCpuMsPerClient?: number;
  /** CPU the serving process spent per event delivered to a client during the flow. */
  servingCpuMicrosPerEvent?: number;
  clientProcesses?: number;
  loadAverage?: string;
  /** placeOrder calls, and how they ended: CONFIRMED, another status (PENDING after ORDER_SAGA_WAIT_MS), an error. */
  ordersPlaced?: number;
  ordersConfirmed?: number;
  ordersOtherStatus?: number;
  orderErrors?: number;
  placeOrderP50Ms?: number;
  events?: number;
  eventsPerSecond?: number;
  drainSeconds?: number;
  drained?: boolean;
  statusP50?: number;
  statusP99?: number;
  statusFromEventP50?: number;
  statusFromEventP99?: number;
  /** Receipt − a direct probe's receipt of the same event: the gateway's share (baseline: the subgraph's spread). */
  statusAfterProbeP50?: number;
  statusAfterProbeP99?: number;
  metricsAfterProbeP50?: number;
  metricsAfterProbeP99?: number;
  /** Gateway rows: JS heap and external memory growth while the clients connected, MiB. */
  heapGrowth?: number;
  externalGrowth?: number;
  /** Seconds since the gateway started, for reading its CPU profile by phase. */
  phases?: string;
  /** The gateway's own fan-out time per event over the flow (gateway_subscription_fanout_seconds). */
  fanOut?: string;
  metricsP50?: number;
  metricsP99?: number;
  statusMissing?: number;
  statusExpected?: number;
  statusDuplicates?: number;
  metricsMissing?: number;
  metricsNotFinal?: number;
  notFinalSample?: string | undefined;
  finalMetrics?: string;
  metricsBackwards?: number;
  errors?: number;
  errorSamples?: string[];
  closes?: Record<string, number>;
  upstream?: string;
  gatewaySubscriptions?: number;
  gatewayConnections?: number;
  gatewayCpu?: number;
  systemCpu?: number;
  clientsCpu?: number;
  servingRssIdle?: number;
  servingRssConnected?: number;
  servingRssPeak?: number;
  rssPerThousand?: number;
}

const now = () => performance.timeOrigin + performance.now();

/** Every process this run started and has not stopped: Ctrl-C stops them too. */
const running = new Set<PinnedProcess>();
function track(process: PinnedProcess): PinnedProcess {
  running.add(process);
  void process.exited.then(() => running.delete(process));
  return process;
}

/** One clients.ts process, driven by JSON lines on its stdin, answering on its stdout. */
function startClientsProcess(options: ClientsOptions, label: string) {
  const proc = track(
    spawnPinned(settings.sideCpu, [...tsx, join(here, 'clients.ts'), JSON.stringify(options)], {
      env: processEnv,
      logFile: join(work, `${label}.log`),
      openFiles,
      stdin: true,
    }),
  );
  const inbox: ClientsMessage[] = [];
  const waiters: { type: ClientsMessage['type']; resolve: (m: ClientsMessage) => void }[] = [];
  createInterface({ input: proc.child.stdout! }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const message = JSON.parse(line) as ClientsMessage;
    const index = waiters.findIndex((w) => w.type === message.type);
    if (index >= 0) waiters.splice(index, 1)[0]!.resolve(message);
    else inbox.push(message);
  });
  const next = <T extends ClientsMessage['type']>(type: T, timeoutMs = 600_000) =>
    new Promise<Extract<ClientsMessage, { type: T }>>((resolvePromise, reject) => {
      const queued = inbox.findIndex((m) => m.type === type);
      if (queued >= 0)
        return resolvePromise(inbox.splice(queued, 1)[0] as Extract<ClientsMessage, { type: T }>);
      const timer = setTimeout(() => reject(new Error(`${label}: no ${type} in ${timeoutMs} ms`)), timeoutMs);
      void proc.exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`${label} exited:\n${tail(proc.logFile)}`));
      });
      waiters.push({
        type,
        resolve: (m) => {
          clearTimeout(timer);
          resolvePromise(m as Extract<ClientsMessage, { type: T }>);
        },
      });
    });
  const request = <T extends ClientsMessage['type']>(command: ClientsCommand, type: T) => {
    proc.child.stdin!.write(`${JSON.stringify(command)}\n`);
    return next(type);
  };
  return {
    proc,
    next,
    request,
    async close() {
      if (proc.child.exitCode === null) {
        await request({ cmd: 'close' }, 'closed').catch(() => {});
      }
      await proc.stop();
    },
  };
}
type ClientsProcess = ReturnType<typeof startClientsProcess>;

/** The gateway's /metrics, as text. */
const gatewayMetricsText = (port: number) => fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());

/** The gateway's own gauges, and Node's heap figures, from its /metrics (unlabelled series). */
async function scrapeGatewayMetrics(port: number): Promise<Record<string, number>> {
  return gaugesOf(await gatewayMetricsText(port));
}

function gaugesOf(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const match of text.matchAll(
    /^(gateway_[a-z_]+|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes)(?:\{service="[^"]*"\})?\s+(\S+)$/gm,
  )) {
    values[match[1]!] = Number(match[2]);
  }
  return values;
}

/** Cumulative bucket counts of the gateway's fan-out histogram, by subgraph: `le` (seconds) → count. */
type FanOutBuckets = Map<string, Map<number, number>>;

function fanOutOf(text: string): FanOutBuckets {
  const bySubgraph: FanOutBuckets = new Map();
  for (const [, labels, count] of text.matchAll(
    /^gateway_subscription_fanout_seconds_bucket\{([^}]*)\}\s+(\S+)$/gm,
  )) {
    const le = /le="([^"]+)"/.exec(labels!)?.[1];
    const subgraph = /subgraph="([^"]+)"/.exec(labels!)?.[1];
    if (!le || !subgraph) continue;
    let buckets = bySubgraph.get(subgraph);
    if (!buckets) bySubgraph.set(subgraph, (buckets = new Map<number, number>()));
    buckets.set(le === '+Inf' ? Infinity : Number(le), Number(count));
  }
  return bySubgraph;
}

/**
 * The events fanned out between two scrapes, per subgraph: how many, and the bucket bounds that
 * hold their p50 and p99 ("≤ bound": the histogram cannot say closer).
 */
function fanOutBetween(before: FanOutBuckets, after: FanOutBuckets): string {
  const parts: string[] = [];
  for (const [subgraph, buckets] of after) {
    const bounds = [...buckets.keys()].sort((a, b) => a - b);
    const counts = bounds.map((le) => buckets.get(le)! - (before.get(subgraph)?.get(le) ?? 0));
    const total = counts.at(-1) ?? 0;
    if (total === 0) continue;
    const bound = (q: number) => {
      const le = bounds[counts.findIndex((count) => count >= q * total)]!;
      return le === Infinity ? `> ${fmt(1_000 * bounds.at(-2)!)}` : `≤ ${fmt(1_000 * le)}`;
    };
    parts.push(`${subgraph} ${total} events, p50 ${bound(0.5)} / p99 ${bound(0.99)} ms`);
  }
  return parts.join(', ') || 'none';
}

/** Waits until the process uses under 15 % of a core for a second (a backlog from the last row). */
async function settle(pid: number, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const before = await cpuSeconds(pid);
    await sleep(1_000);
    if ((await cpuSeconds(pid)) - before < 0.15) return;
  }
}

/** Signals the gateway to write a heap snapshot and waits until it is written, then names it. */
async function heapSnapshot(gateway: PinnedProcess, name: string) {
  const dir = settings.heapSnapshotDir!;
  mkdirSync(dir, { recursive: true });
  const before = new Set(readdirSync(dir));
  process.kill(gateway.pid, 'SIGUSR2');
  const deadline = Date.now() + 600_000;
  let lastSize = -1;
  while (Date.now() < deadline) {
    await sleep(1_000);
    const file = readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (!file) continue;
    const size = statSync(join(dir, file)).size;
    // Node writes the file in one go and the gateway answers again once it is done.
    if (
      size > 0 &&
      size === lastSize &&
      (await fetch(`http://127.0.0.1:${settings.port}/health`).catch(() => null))
    ) {
      renameSync(join(dir, file), join(dir, `${name}.heapsnapshot`));
      console.log(`  heap snapshot ${join(dir, `${name}.heapsnapshot`)}`);
      return;
    }
    lastSize = size;
  }
  throw new Error(`no heap snapshot from the gateway in ${dir}`);
}

function driver(options: DriverOptions): Promise<DriverResult> {
  return runPinned(
    settings.sideCpu,
    [...tsx, join(here, 'driver.ts'), JSON.stringify(options)],
    processEnv,
  ).then((stdout) => JSON.parse(stdout.trim().split('\n').pop()!) as DriverResult);
}

async function progressOf(processes: ClientsProcess[]): Promise<ProgressMessage> {
  const all = await Promise.all(processes.map((p) => p.request({ cmd: 'progress' }, 'progress')));
  return {
    type: 'progress',
    events: all.reduce((n, p) => n + p.events, 0),
    statusConfirmed: all.reduce((n, p) => n + p.statusConfirmed, 0),
    clientsWithStatus: all.reduce((n, p) => n + p.clientsWithStatus, 0),
    clientsWithMetrics: all.reduce((n, p) => n + p.clientsWithMetrics, 0),
    minConfirmedOrders: Math.min(...all.map((p) => p.minConfirmedOrders)),
    closed: all.reduce((n, p) => n + p.closed, 0),
  };
}

/** Polls the clients until `done` or the drain timeout; true when done. */
async function waitFor(
  processes: ClientsProcess[],
  done: (p: ProgressMessage) => boolean | Promise<boolean>,
): Promise<boolean> {
  const deadline = Date.now() + settings.drainTimeoutSeconds * 1_000;
  for (;;) {
    if (await done(await progressOf(processes))) return true;
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
}

async function measureRow(
  path: Path,
  clients: number,
  system: PinnedProcess,
  ready: SystemReady,
): Promise<Row> {
  const socketsPerClient = path === 'gateway' ? 1 : 2;
  // The serving process holds one descriptor per client socket.
  if (clients * socketsPerClient + FD_RESERVE > openFiles) {
    return {
      path,
      clients,
      skipped: `skipped: ${clients * socketsPerClient} server-side sockets in one process exceed the open-files limit (${openFiles}, the hard limit here)`,
    };
  }
  const gatewayUrl = `http://127.0.0.1:${settings.port}/graphql`;
  const gateway = spawnPinned(
    settings.gatewayCpu,
    [
      ...(settings.cpuProfileDir && path === 'gateway'
        ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir]
        : []),
      ...(settings.heapSnapshotDir && path === 'gateway'
        ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${settings.heapSnapshotDir}`]
        : []),
      ...tsx,
      join(root, 'gateway/src/main.ts'),
    ],
    {
      env: {
        ...processEnv,
        PORT: String(settings.port),
        SUPERGRAPH_PATH: join(root, 'supergraph.graphql'),
        ...Object.fromEntries(
          SUBGRAPH_NAMES.map((name) => [`SUBGRAPH_${name.toUpperCase()}_URL`, ready.subgraphs[name]]),
        ),
      },
      logFile: join(work, `gateway-${path}-${clients}.log`),
      openFiles,
    },
  );
  track(gateway);
  const processes: ClientsProcess[] = [];
  /**
   * One more client, subscribed straight to the subgraphs: when it receives an event is about when
   * the gateway receives it from upstream, so receipt − the probe's receipt is the gateway's share.
   */
  let probe: ClientsProcess | undefined;
  try {
    const gatewayStarted = now();
    const phase = () => ((now() - gatewayStarted) / 1_000).toFixed(1);
    await waitForGraphQL(gatewayUrl, gateway);
    await settle(system.pid);
    const serving = path === 'gateway' ? gateway.pid : system.pid;
    const row: Row = { path, clients, loadAverage: loadAverage() };
    row.servingRssIdle = await rssMiB(serving);

    // Connect: each client process takes an equal share of the clients.
    const credential = await createServiceCredentials({
      secret: secrets.SERVICE_SECRET,
      ttlSeconds: 3_600,
      service: 'gateway',
    }).sign({ id: ready.admin.id, role: 'ADMIN' } satisfies Viewer);
    const ws = (url: string) => url.replace(/^http/, 'ws');
    const direct: SocketSpec[] = [
      {
        url: ws(ready.subgraphs['analytics']!),
        connectionParams: { [SERVICE_CREDENTIAL_HEADER]: credential },
        subscriptions: [METRICS_SUBSCRIPTION('id')],
      },
      {
        url: ws(ready.subgraphs['orders']!),
        connectionParams: { [SERVICE_CREDENTIAL_HEADER]: credential },
        subscriptions: [STATUS_SUBSCRIPTION],
      },
    ];
    const sockets: SocketSpec[] =
      path === 'gateway'
        ? [
            {
              url: ws(gatewayUrl),
              connectionParams: bearer(ready.admin.token),
              subscriptions: [METRICS_SUBSCRIPTION('name'), STATUS_SUBSCRIPTION],
            },
          ]
        : direct;
    // The probe subscribes first, so a subgraph sends it each event before any other subscriber.
    probe = startClientsProcess(
      { clients: 1, sockets: direct, connectConcurrency: 2 },
      `probe-${path}-${clients}`,
    );
    await probe.next('ready');
    const perProcess = Math.floor(MAX_SOCKETS_PER_CLIENT_PROCESS / socketsPerClient);
    const processCount = Math.ceil(clients / perProcess);
    if (settings.heapSnapshotDir && path === 'gateway') {
      await heapSnapshot(gateway, `gateway-${clients}-before-clients`);
    }
    const servingCpuBeforeConnect = await cpuSeconds(serving);
    const heapBefore = path === 'gateway' ? await scrapeGatewayMetrics(settings.port) : {};
    const connectFrom = phase();
    for (let i = 0; i < processCount; i++) {
      const share = Math.floor(clients / processCount) + (i < clients % processCount ? 1 : 0);
      processes.push(
        startClientsProcess(
          {
            clients: share,
            sockets,
            connectConcurrency: Math.ceil(settings.connectConcurrency / processCount),
          },
          `clients-${path}-${clients}-${i}`,
        ),
      );
    }
    const readies = await Promise.all(processes.map((p) => p.next('ready')));
    row.clientProcesses = processCount;
    row.sockets = readies.reduce((n, r) => n + r.sockets, 0);
    row.failedSockets = readies.reduce((n, r) => n + r.failedSockets, 0);
    row.connectSeconds = Math.max(...readies.map((r) => r.connectMs)) / 1_000;
    const failures = readies.flatMap((r) => r.failures);
    console.log(
      `  ${path} ${clients}: ${row.sockets} sockets in ${row.connectSeconds.toFixed(1)} s${row.failedSockets ? `, ${row.failedSockets} failed: ${failures.join('; ')}` : ''}`,
    );
    // Memory once every subscription is live and before any event: what the clients themselves
    // cost (after the warm-up, undelivered events and garbage would count too).
    if (path === 'gateway') {
      const deadline = Date.now() + settings.drainTimeoutSeconds * 1_000;
      let gauges = await scrapeGatewayMetrics(settings.port);
      while ((gauges['gateway_subscriptions'] ?? 0) < 2 * row.sockets && Date.now() < deadline) {
        await sleep(250);
        gauges = await scrapeGatewayMetrics(settings.port);
      }
      row.gatewaySubscriptions = gauges['gateway_subscriptions'];
      row.gatewayConnections = gauges['gateway_websocket_connections'];
      const mib = (key: string) => (gauges[key]! - heapBefore[key]!) / 2 ** 20;
      row.heapGrowth = mib('nodejs_heap_size_used_bytes');
      row.externalGrowth = mib('nodejs_external_memory_bytes');
    } else {
      // No gauge to wait on: the subgraphs have had the subscribe messages for a while.
      await sleep(2_000);
    }
    row.connectCpuMsPerClient = (1_000 * ((await cpuSeconds(serving)) - servingCpuBeforeConnect)) / clients;
    row.servingRssConnected = await rssMiB(serving);
    if (settings.heapSnapshotDir && path === 'gateway') {
      await heapSnapshot(gateway, `gateway-${clients}-clients-connected`);
    }

    const adminHeaders = bearer(ready.admin.token);
    const readMetrics = async () => {
      const data =
        path === 'gateway'
          ? await postGraphQL<{ salesMetrics: unknown }>(gatewayUrl, METRICS_QUERY('name'), {}, adminHeaders)
          : await postGraphQL<{ salesMetrics: unknown }>(
              ready.subgraphs['analytics']!,
              METRICS_QUERY('id'),
              {},
              { [SERVICE_CREDENTIAL_HEADER]: credential },
            );
      return data.salesMetrics as { confirmedOrders: number };
    };
    // An overloaded server may time out or reset a kept-alive connection: try a few times.
    const metricsNow = async () => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await readMetrics();
        } catch (error) {
          if (attempt === 5) throw error;
          await sleep(1_000 * attempt);
        }
      }
    };
    const orders = (count: number) =>
      driver({
        url: gatewayUrl,
        token: ready.admin.token,
        productIds: ready.productIds,
        ratePerSecond: settings.ordersPerSecond,
        count,
      });

    // Warm-up: orders until every client has had an event of each subscription (so all are
    // subscribed upstream), and the last warm-up push reached everyone.
    await orders(settings.warmupOrders);
    const warmConfirmed = (await metricsNow()).confirmedOrders;
    const warmed = await waitFor(
      [...processes, probe],
      (p) =>
        p.clientsWithStatus === clients + 1 &&
        p.clientsWithMetrics === clients + 1 &&
        p.minConfirmedOrders >= warmConfirmed,
    );
    if (!warmed) console.log(`  ${path} ${clients}: not every client got the warm-up events`);
    await Promise.all([...processes, probe].map((p) => p.request({ cmd: 'reset' }, 'reset')));

    const connectTo = phase();
    const clientPids = processes.map((p) => p.proc.pid);
    const cpuOf = async (pids: number[]) =>
      (await Promise.all(pids.map(cpuSeconds))).reduce((a, b) => a + b, 0);
    const cpuBefore = {
      gateway: await cpuSeconds(gateway.pid),
      system: await cpuSeconds(system.pid),
      clients: await cpuOf(clientPids),
    };
    const peak = samplePeakRss(serving);
    const base = (await metricsNow()).confirmedOrders;
    const fanOutBefore = path === 'gateway' ? fanOutOf(await gatewayMetricsText(settings.port)) : undefined;
    const flowStart = now();
    const flowFrom = phase();

    // The measured flow; the upstream count is read halfway through it.
    const upstreamSamples: number[] = [];
    const sampler =
      path === 'gateway'
        ? sleep((settings.durationSeconds * 1_000) / 2).then(async () => {
            upstreamSamples.push(
              (await scrapeGatewayMetrics(settings.port))['gateway_upstream_subscriptions'] ?? NaN,
            );
          })
        : Promise.resolve();
    const placed = await orders(Math.round(settings.ordersPerSecond * settings.durationSeconds));
    await sampler;
    const confirmedOrders = placed.orders.filter((o) => o.status === 'CONFIRMED');
    // Drained: every client has every returned order CONFIRMED, and a push showing the figures
    // as they are now (re-read: an order whose placeOrder timed out may still confirm).
    row.drained = await waitFor(
      processes,
      async (p) =>
        p.statusConfirmed >= clients * confirmedOrders.length &&
        p.minConfirmedOrders >= base + confirmedOrders.length &&
        // A slow or failed read (the gateway busy fanning out) just means "not yet".
        p.minConfirmedOrders >=
          (await metricsNow().catch(() => ({ confirmedOrders: Infinity }))).confirmedOrders,
    );
    const flowEnd = now();
    row.phases = `connect + warm-up ${connectFrom}–${connectTo} s, flow ${flowFrom}–${phase()} s after the gateway's start`;
    const wallSeconds = (flowEnd - flowStart) / 1_000;
    row.drainSeconds = (flowEnd - placed.endedAt) / 1_000;
    row.gatewayCpu = (100 * ((await cpuSeconds(gateway.pid)) - cpuBefore.gateway)) / wallSeconds;
    row.systemCpu = (100 * ((await cpuSeconds(system.pid)) - cpuBefore.system)) / wallSeconds;
    row.clientsCpu = (100 * ((await cpuOf(clientPids)) - cpuBefore.clients)) / wallSeconds;
    const servingCpuPercent = path === 'gateway' ? row.gatewayCpu : row.systemCpu;
    row.servingCpuMicrosPerEvent =
      (servingCpuPercent * wallSeconds * 10_000) / Math.max(1, (await progressOf(processes)).events);
    row.servingRssPeak = await peak();
    row.rssPerThousand = ((row.servingRssConnected - row.servingRssIdle) * 1_000) / clients;
    if (path === 'gateway') {
      // One scrape for both: the upstream count and the fan-out histogram at the flow's end.
      const metricsText = await gatewayMetricsText(settings.port);
      upstreamSamples.push(gaugesOf(metricsText)['gateway_upstream_subscriptions'] ?? NaN);
      row.upstream = `${Math.max(...upstreamSamples)}`;
      row.fanOut = fanOutBetween(fanOutBefore!, fanOutOf(metricsText));
    } else {
      row.upstream = `${2 * clients} (one per client subscription)`;
    }

    // The final figures once they stopped moving (no saga still running in the background).
    let finalMetrics = JSON.stringify(await metricsNow());
    for (let i = 0; i < 20; i++) {
      await sleep(500);
      const again = JSON.stringify(await metricsNow());
      if (again === finalMetrics) break;
      finalMetrics = again;
    }
    const returned = [...confirmedOrders].sort((a, b) => a.returnedAt - b.returnedAt);
    const probeTimes = await probe.request({ cmd: 'times' }, 'times');
    const reports: ReportMessage[] = await Promise.all(
      processes.map((p) =>
        p.request(
          {
            cmd: 'report',
            orders: confirmedOrders.map(({ id, returnedAt }) => ({ id, returnedAt })),
            metricsTargets: returned.map((o, k) => ({
              confirmedOrders: base + k + 1,
              returnedAt: o.returnedAt,
            })),
            finalMetrics,
            probe: { status: probeTimes.status, pushes: probeTimes.pushes },
          },
          'report',
        ),
      ),
    );
    const status = createLatencyHistogram();
    const statusFromEvent = createLatencyHistogram();
    const metrics = createLatencyHistogram();
    const statusAfterProbe = createLatencyHistogram();
    const metricsAfterProbe = createLatencyHistogram();
    for (const report of reports) {
      status.merge(report.statusLatency);
      statusFromEvent.merge(report.statusFromEvent);
      metrics.merge(report.metricsLatency);
      statusAfterProbe.merge(report.statusAfterProbe);
      metricsAfterProbe.merge(report.metricsAfterProbe);
    }
    const sum = (pick: (r: ReportMessage) => number) => reports.reduce((n, r) => n + pick(r), 0);
    const placeMs = placed.orders.map((o) => o.ms).sort((a, b) => a - b);
    Object.assign(row, {
      ordersPlaced: placed.orders.length + placed.errors.length,
      ordersConfirmed: confirmedOrders.length,
      ordersOtherStatus: placed.orders.length - confirmedOrders.length,
      orderErrors: placed.errors.length,
      placeOrderP50Ms: placeMs[Math.floor(placeMs.length / 2)] ?? NaN,
      events: sum((r) => r.events),
      eventsPerSecond: sum((r) => r.events) / wallSeconds,
      statusP50: status.percentile(50),
      statusP99: status.percentile(99),
      statusFromEventP50: statusFromEvent.percentile(50),
      statusFromEventP99: statusFromEvent.percentile(99),
      statusAfterProbeP50: statusAfterProbe.percentile(50),
      statusAfterProbeP99: statusAfterProbe.percentile(99),
      metricsAfterProbeP50: metricsAfterProbe.percentile(50),
      metricsAfterProbeP99: metricsAfterProbe.percentile(99),
      metricsP50: metrics.percentile(50),
      metricsP99: metrics.percentile(99),
      statusMissing: sum((r) => r.statusMissing),
      statusExpected: clients * confirmedOrders.length,
      statusDuplicates: sum((r) => r.statusDuplicates),
      metricsMissing: sum((r) => r.metricsMissing),
      metricsNotFinal: sum((r) => r.metricsNotFinal),
      notFinalSample: reports.find((r) => r.notFinalSample)?.notFinalSample,
      finalMetrics,
      metricsBackwards: sum((r) => r.metricsBackwards),
      errors: sum((r) => r.errors),
      errorSamples: [...reports.flatMap((r) => r.errorSamples), ...placed.errors].slice(0, 5),
      closes: reports.reduce<Record<string, number>>((all, r) => {
        for (const [code, n] of Object.entries(r.closes)) all[code] = (all[code] ?? 0) + n;
        return all;
      }, {}),
    } satisfies Partial<Row>);
    console.log(`  ${path} ${clients}: ${JSON.stringify(row)}`);
    return row;
  } finally {
    await Promise.all(processes.map((p) => p.close()));
    await probe?.close();
    await gateway.stop();
  }
}

const fmt = (value: number | undefined, digits = 0) =>
  value === undefined || Number.isNaN(value) ? 'n/a' : value.toFixed(digits);

function tableOf(rows: Row[]): string[] {
  const lines = [
    '| path | clients | delivered events/s | latency from placeOrder p50 / p99 ms: orderStatusChanged | salesMetricsUpdated | orderStatusChanged from its event p50 / p99 ms | after a direct probe p50 / p99 ms: orderStatusChanged | salesMetricsUpdated | missed CONFIRMED / expected | clients not on the final totals | upstream subscriptions | CPU: gateway / subgraphs / clients | serving process CPU µs per delivered event | serving RSS MiB: idle → connected → peak | RSS per 1,000 clients MiB | connect s (serving CPU ms per client) |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
  ];
  for (const r of rows) {
    const label = r.path === 'gateway' ? 'through the gateway' : 'baseline: direct to subgraphs';
    const clients = r.clients.toLocaleString('en-US');
    if (r.skipped) {
      lines.push(`| ${label} | ${clients} | ${r.skipped} | | | | | | | | | | | | | |`);
      continue;
    }
    lines.push(
      `| ${label} | ${clients} | ${fmt(r.eventsPerSecond)} | ${fmt(r.statusP50)} / ${fmt(r.statusP99)} | ${fmt(r.metricsP50)} / ${fmt(r.metricsP99)} | ${fmt(r.statusFromEventP50)} / ${fmt(r.statusFromEventP99)} | ${fmt(r.statusAfterProbeP50)} / ${fmt(r.statusAfterProbeP99)} | ${fmt(r.metricsAfterProbeP50)} / ${fmt(r.metricsAfterProbeP99)} | ${r.statusMissing} / ${r.statusExpected}${r.drained ? '' : ' (drain timed out)'} | ${r.metricsNotFinal} / ${clients} | ${r.upstream} | ${fmt(r.gatewayCpu)} % / ${fmt(r.systemCpu)} % / ${fmt(r.clientsCpu)} % | ${fmt(r.servingCpuMicrosPerEvent)} | ${fmt(r.servingRssIdle)} → ${fmt(r.servingRssConnected)} → ${fmt(r.servingRssPeak)} | ${fmt(r.rssPerThousand, 1)} | ${fmt(r.connectSeconds, 1)} (${fmt(r.connectCpuMsPerClient, 2)}) |`,
    );
  }
  return lines;
}

function detailsOf(rows: Row[]): string[] {
  return rows
    .filter((r) => !r.skipped)
    .map((r) =>
      [
        `- ${r.path} ${r.clients}: load average ${r.loadAverage}`,
        `${r.sockets} sockets (${r.failedSockets} failed) from ${r.clientProcesses} client process(es)`,
        `${r.ordersPlaced} placeOrder: ${r.ordersConfirmed} returned CONFIRMED, ${r.ordersOtherStatus} another status, ${r.orderErrors} failed (p50 of those answered ${fmt(r.placeOrderP50Ms)} ms)`,
        `${r.events} events, drained ${fmt(r.drainSeconds, 1)} s after the last placeOrder returned`,
        `salesMetricsUpdated targets never reflected ${r.metricsMissing}, pushes going backwards ${r.metricsBackwards}, duplicate CONFIRMED ${r.statusDuplicates}`,
        `errors ${r.errors}${r.errorSamples?.length ? ` (${r.errorSamples.join('; ')})` : ''}`,
        ...(r.metricsNotFinal
          ? [`final figures ${r.finalMetrics}, a client's last push ${r.notFinalSample}`]
          : []),
        `sockets closed by the server ${JSON.stringify(r.closes)}`,
        ...(r.path === 'gateway'
          ? [
              `gauges once connected: ${r.gatewayConnections} connections, ${r.gatewaySubscriptions} subscriptions`,
              `gateway fan-out over the flow, an event's arrival to its last client's bytes sent (gateway_subscription_fanout_seconds): ${r.fanOut}`,
              `JS heap in use +${fmt(r.heapGrowth)} MiB, external +${fmt(r.externalGrowth)} MiB once connected (garbage not yet collected included)`,
              `${r.phases}`,
            ]
          : []),
      ].join('; '),
    );
}

function gitDescription(): string {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root }).toString().trim();
    const dirty = execFileSync(
      'git',
      ['status', '--porcelain', '--', 'gateway', 'lib', 'subgraphs', 'scripts'],
      {
        cwd: root,
      },
    )
      .toString()
      .trim();
    return `commit ${commit}${dirty ? ' (with uncommitted changes under gateway/ lib/ subgraphs/ scripts/)' : ''}`;
  } catch {
    return 'commit unknown';
  }
}

async function main() {
  const machine = machineLines(
    `Node ${process.version}; @apollo/gateway ${packageVersion(root, '@apollo/gateway')}, @apollo/server ${packageVersion(root, '@apollo/server')}, graphql ${packageVersion(root, 'graphql')}, graphql-ws ${packageVersion(root, 'graphql-ws')}, ws ${packageVersion(root, 'ws')}; ${gitDescription()}`,
  );
  // After machineLines: nproc counts only the CPUs this process may run on.
  pinSelf(settings.sideCpu);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      console.error(`${signal}: stopping ${running.size} processes`);
      void Promise.all([...running].map((p) => p.stop())).finally(() => process.exit(130));
    });
  }
  console.log(
    `subscriptions benchmark; ${JSON.stringify(settings)}; open files ${openFiles}; logs in ${work}`,
  );
  const { process: system, ready } = await startSystemProcess<SystemReady>({
    cpus: settings.sideCpu,
    nodeArgs: [...tsx, join(here, 'system.ts')],
    env: processEnv,
    logFile: join(work, 'system.log'),
    openFiles,
  });
  track(system);
  const rows: Row[] = [];
  try {
    for (const clients of settings.clientCounts) {
      for (const path of settings.baseline ? (['gateway', 'direct'] as const) : (['gateway'] as const)) {
        console.log(`measuring ${path}, ${clients} clients`);
        rows.push(
          await measureRow(path, clients, system, ready).catch((error: unknown): Row => {
            console.error(`  ${path} ${clients} failed:`, error);
            return { path, clients, skipped: `failed: ${String(error).slice(0, 200)}` };
          }),
        );
      }
    }
  } finally {
    await system.stop();
  }

  const table = tableOf(rows);
  const markdown = [
    '# Subscription fan-out: N graphql-ws clients on salesMetricsUpdated and orderStatusChanged while orders flow',
    '',
    `Run ${new Date().toISOString()} with \`${benchCommand('bench:subscriptions')}\`.`,
    '',
    ...machine,
    `- Pinning: the gateway alone on CPU ${settings.gatewayCpu}; the system (all subgraphs, one process: \`scripts/createSystem.ts\` on in-memory PGlite and in-memory brokers), the client processes, the order driver and the harness on CPU ${settings.sideCpu}`,
    `- Each client: one graphql-ws connection to the gateway as the admin, subscribed to \`salesMetricsUpdated { totalOrders confirmedOrders cancelledOrders revenueCents topProducts { product { name } unitsSold } }\` and \`orderStatusChanged { id status }\`. Baseline: the same clients with one connection to the analytics and one to the orders subgraph (\`product { id }\`: a subgraph cannot resolve the name), authenticated with a service credential signed for the admin`,
    '- Probe: one more client, subscribed straight to the analytics and orders subgraphs before the others; "after a direct probe" = receipt − its receipt of the same event: through the gateway, the gateway\'s share of the latency; in the baseline, the spread of the subgraph\'s own fan-out',
    `- Orders: ${settings.warmupOrders} warm-up, then ${Math.round(settings.ordersPerSecond * settings.durationSeconds)} at ${settings.ordersPerSecond}/s (open loop), placeOrder with tok_visa through the gateway, as the admin; drain timeout ${settings.drainTimeoutSeconds} s`,
    `- Limits raised for the run: RATE_LIMIT_CAPACITY and RATE_LIMIT_REFILL_PER_SECOND = 10^9 (every client is the one admin, from one address); SUBSCRIPTION_* at their defaults. NODE_ENV=production, LOG_LEVEL=warn. Open files per process: ${openFiles} (\`ulimit -n\` in the spawn; the container's hard limit)`,
    '',
    ...table,
    '',
    'Rows:',
    '',
    ...detailsOf(rows),
    '',
  ].join('\n');
  writeResults(settings.output, markdown);
  console.log(`\n${table.join('\n')}\n\nwritten to ${settings.output}`);
}

await main();
