/**
 * Gateway throughput benchmark (issue #7, part 1): npm run bench:gateways | bench:heavy-query.
 *
 * One after another on the same subgraphs and cores: this project's gateway, stock Apollo
 * Gateway, and Hive Gateway (defaults, and as graphql-gateways-benchmark configures it). The
 * gateway under test runs alone on GATEWAY_CPU; the subgraphs and the load generator
 * (autocannon, its own process) share SIDE_CPU. Warm-up, then ROUNDS rounds; medians.
 * See bench/README.md for the knobs.
 */
import { deepStrictEqual } from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServiceCredentials } from '../../lib/auth/tokens.ts';
import { createUserTokens } from '../../lib/auth/tokens.ts';
import type { LoadOptions, LoadResult } from '../shared/load.ts';
import { cpuSeconds, rssMiB, runPinned, samplePeakRss, spawnPinned } from '../shared/processes.ts';
import { benchCommand, machineLines, median, packageVersion, writeResults } from '../shared/report.ts';
import { startSystemProcess, tail, waitForGraphQL } from '../shared/system.ts';
import { composeBenchSupergraph } from './subgraphs/composeBenchSupergraph.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const peers = resolve(root, 'bench/peers');
const scenarioName = process.argv[2] === 'heavy' ? 'heavy' : 'federation';

const env = process.env;
const settings = {
  rounds: Number(env['BENCH_ROUNDS'] ?? 3),
  durationSeconds: Number(env['BENCH_DURATION_S'] ?? 10),
  warmupSeconds: Number(env['BENCH_WARMUP_S'] ?? 5),
  connections: Number(env['BENCH_CONNECTIONS'] ?? 50),
  gatewayCpu: env['BENCH_GATEWAY_CPU'] ?? '0',
  sideCpu: env['BENCH_SIDE_CPU'] ?? '1',
  gateways: (env['BENCH_GATEWAYS'] ?? 'event-federation,apollo-gateway,hive-gateway,hive-gateway-bench')
    .split(',')
    .map((g) => g.trim()),
  /** A directory: this project's gateway runs with --cpu-prof and writes its profile there. */
  cpuProfileDir: env['BENCH_CPU_PROF'] ? resolve(env['BENCH_CPU_PROF']) : undefined,
  output:
    env['BENCH_OUTPUT'] ??
    join(root, 'bench/results', scenarioName === 'heavy' ? 'heavy-query.md' : 'gateways.md'),
};
const GATEWAY_PORT = 4400;
const SERVICE_CREDENTIAL_HEADER = 'x-service-credential';
const work = mkdtempSync(join(tmpdir(), `bench-${scenarioName}-`));
// Resolved here: gateways run in a scratch directory, where a bare 'tsx' would not resolve.
const tsx = ['--import', import.meta.resolve('tsx')];

interface Backend {
  supergraphPath: string;
  /** Headers every client request carries (the same for every gateway). */
  clientHeaders: Record<string, string>;
  /** A client header the peers forward to subgraphs (this project's subgraphs need a credential). */
  forwardHeader?: string;
  query: string;
  check(gateway: string, body: unknown): void;
  stop(): Promise<void>;
}

interface GatewaySpec {
  label: string;
  nodeArgs: (backend: Backend) => string[];
  env?: NodeJS.ProcessEnv;
}

const jwtSecret = randomBytes(48).toString('base64');
const serviceSecret = randomBytes(48).toString('base64');
const productionEnv = {
  NODE_ENV: 'production',
  JWT_SECRET: jwtSecret,
  SERVICE_SECRET: serviceSecret,
  ADMIN_PASSWORD: randomBytes(12).toString('base64url'),
  APOLLO_TELEMETRY_DISABLED: 'true',
};

function hiveConfig(backend: Backend, benchConfig: boolean): string {
  const file = join(work, benchConfig ? 'hive-bench.config.mjs' : 'hive.config.mjs');
  const lines = [];
  // graphql-gateways-benchmark runs Hive Gateway with this flag (and --jit).
  if (benchConfig) lines.push('  inboundInflightRequestDeduplication: true,');
  if (backend.forwardHeader) {
    lines.push(
      `  propagateHeaders: { fromClientToSubgraphs: ({ request }) => ({ ${JSON.stringify(backend.forwardHeader)}: request.headers.get(${JSON.stringify(backend.forwardHeader)}) ?? '' }) },`,
    );
  }
  writeFileSync(file, `export const gatewayConfig = {\n${lines.join('\n')}\n};\n`);
  return file;
}

const hiveBin = join(peers, 'node_modules/@graphql-hive/gateway/dist/bin.js');
const hiveArgs = (backend: Backend, benchConfig: boolean) => [
  hiveBin,
  'supergraph',
  backend.supergraphPath,
  '--port',
  String(GATEWAY_PORT),
  '--host',
  '127.0.0.1',
  '--fork',
  '1',
  '--config-path',
  hiveConfig(backend, benchConfig),
  ...(benchConfig ? ['--jit'] : []),
];

const gatewaySpecs: Record<string, GatewaySpec> = {
  'event-federation': {
    label: 'this gateway (event-federation)',
    nodeArgs: () => [
      ...(settings.cpuProfileDir ? ['--cpu-prof', '--cpu-prof-dir', settings.cpuProfileDir] : []),
      ...tsx,
      join(root, 'gateway/src/main.ts'),
    ],
    // Rate limits stay on but cannot bind: 50 clients share one token and one address, far
    // beyond any sane per-client limit (bench/README.md says so in its results).
    env: { LOG_LEVEL: 'warn', RATE_LIMIT_CAPACITY: '1000000', RATE_LIMIT_REFILL_PER_SECOND: '1000000' },
  },
  'apollo-gateway': {
    label: 'stock @apollo/gateway (@apollo/server, defaults)',
    nodeArgs: () => [...tsx, join(here, 'servers/apolloGateway.ts')],
  },
  'hive-gateway': {
    label: '@graphql-hive/gateway (defaults)',
    nodeArgs: (backend) => hiveArgs(backend, false),
  },
  'hive-gateway-bench': {
    label: '@graphql-hive/gateway (--jit, inbound dedup: the field benchmark config)',
    nodeArgs: (backend) => hiveArgs(backend, true),
  },
};

async function federationBackend(): Promise<Backend> {
  const subgraphs = spawnPinned(settings.sideCpu, [...tsx, join(here, 'subgraphs/main.ts')], {
    env: { ...env, PORT: '4200', HOST: '127.0.0.1' },
    logFile: join(work, 'subgraphs.log'),
  });
  const deadline = Date.now() + 60_000;
  while (
    !(await fetch('http://127.0.0.1:4200/health')
      .then((r) => r.ok)
      .catch(() => false))
  ) {
    if (Date.now() > deadline || subgraphs.child.exitCode !== null) {
      throw new Error(`bench subgraphs did not start:\n${tail(subgraphs.logFile)}`);
    }
    await sleep(200);
  }
  const supergraphPath = join(work, 'supergraph.graphql');
  writeFileSync(supergraphPath, composeBenchSupergraph('http://127.0.0.1:4200'));
  const expected: unknown = JSON.parse(readFileSync(join(here, 'expected/federation.json'), 'utf8'));
  // A valid token: this gateway verifies it on every request ("auth on"); the peers ignore it.
  const token = await createUserTokens({ secret: jwtSecret, ttlSeconds: 3_600 }).issue({
    id: 'bench-user',
    role: 'CUSTOMER',
  });
  return {
    supergraphPath,
    clientHeaders: { authorization: `Bearer ${token}` },
    query: readFileSync(join(here, 'queries/federation.graphql'), 'utf8'),
    check: (_gateway, body) => deepStrictEqual(body, expected),
    stop: () => subgraphs.stop(),
  };
}

async function heavyBackend(): Promise<Backend> {
  const { process: system, ready } = await startSystemProcess<{
    subgraphs: Record<string, string>;
    userId: string;
    userToken: string;
  }>({
    cpus: settings.sideCpu,
    nodeArgs: [...tsx, join(here, 'heavySystem.ts')],
    env: { ...env, ...productionEnv, DATA_DIR: ':memory:', LOG_LEVEL: 'warn', HOST: '127.0.0.1' },
    logFile: join(work, 'system.log'),
  });
  // The project's supergraph, routed to this run's subgraphs (the same file for every gateway).
  let sdl = readFileSync(join(root, 'supergraph.graphql'), 'utf8');
  for (const [name, url] of Object.entries(ready.subgraphs)) {
    sdl = sdl.replace(new RegExp(`(@join__graph\\(name: "${name}", url: ")[^"]*"`), `$1${url}"`);
  }
  const supergraphPath = join(work, 'supergraph.graphql');
  writeFileSync(supergraphPath, sdl);
  // The peers cannot sign this project's subgraph credential, so the client hands them one
  // (signed by the harness, as this gateway signs per request) and they forward it.
  const credential = await createServiceCredentials({
    secret: serviceSecret,
    ttlSeconds: 3_600,
    service: 'gateway',
  }).sign({ id: ready.userId, role: 'CUSTOMER' });
  let reference: unknown;
  return {
    supergraphPath,
    clientHeaders: { authorization: `Bearer ${ready.userToken}`, [SERVICE_CREDENTIAL_HEADER]: credential },
    forwardHeader: SERVICE_CREDENTIAL_HEADER,
    query: readFileSync(join(here, 'queries/heavy.graphql'), 'utf8'),
    check(_gateway, body) {
      const edges = (body as { data?: { me?: { orders?: { edges?: { node: { items: unknown[] } }[] } } } })
        .data?.me?.orders?.edges;
      if (edges?.length !== 20 || edges.some((e) => e.node.items.length !== 5)) {
        throw new Error(`expected 20 orders x 5 items, got ${JSON.stringify(body).slice(0, 500)}`);
      }
      if (reference === undefined) reference = body;
      else deepStrictEqual(body, reference);
    },
    stop: () => system.stop(),
  };
}

interface Round extends LoadResult {
  cpuPercent: number;
  peakRssMiB: number;
}

async function measure(
  spec: GatewaySpec,
  backend: Backend,
): Promise<{ rounds: Round[]; startRssMiB: number }> {
  const url = `http://127.0.0.1:${GATEWAY_PORT}/graphql`;
  const gateway = spawnPinned(settings.gatewayCpu, spec.nodeArgs(backend), {
    env: {
      ...env,
      ...productionEnv,
      ...spec.env,
      PORT: String(GATEWAY_PORT),
      HOST: '127.0.0.1',
      SUPERGRAPH_PATH: backend.supergraphPath,
      ...(backend.forwardHeader ? { FORWARD_HEADER: backend.forwardHeader } : {}),
    },
    cwd: work,
    logFile: join(work, `${spec.label.replace(/\W+/g, '-')}.log`),
  });
  try {
    await waitForGraphQL(url, gateway);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...backend.clientHeaders },
      body: JSON.stringify({ query: backend.query }),
    });
    backend.check(spec.label, await response.json());
    const startRssMiB = await rssMiB(gateway.pid);
    const load = (durationSeconds: number) =>
      runPinned(
        settings.sideCpu,
        [
          ...tsx,
          join(root, 'bench/shared/load.ts'),
          JSON.stringify({
            url,
            body: JSON.stringify({ query: backend.query }),
            headers: backend.clientHeaders,
            connections: settings.connections,
            durationSeconds,
          } satisfies LoadOptions),
        ],
        env,
      ).then((stdout) => JSON.parse(stdout.trim().split('\n').pop()!) as LoadResult);
    await load(settings.warmupSeconds);
    const rounds: Round[] = [];
    for (let i = 0; i < settings.rounds; i++) {
      const cpuBefore = await cpuSeconds(gateway.pid);
      const started = performance.now();
      const peak = samplePeakRss(gateway.pid);
      const result = await load(settings.durationSeconds);
      const wallSeconds = (performance.now() - started) / 1000;
      const cpuPercent = (100 * ((await cpuSeconds(gateway.pid)) - cpuBefore)) / wallSeconds;
      rounds.push({ ...result, cpuPercent, peakRssMiB: await peak() });
      console.log(
        `  ${spec.label} round ${i + 1}: ${result.requestsPerSecond.toFixed(1)} req/s, p95 ${result.p95Ms.toFixed(1)} ms, cpu ${cpuPercent.toFixed(0)}%`,
      );
    }
    return { rounds, startRssMiB };
  } finally {
    await gateway.stop();
  }
}

async function main() {
  const machine = machineLines(
    `Node ${process.version}; @apollo/gateway ${packageVersion(root, '@apollo/gateway')}, @apollo/server ${packageVersion(root, '@apollo/server')}, graphql ${packageVersion(root, 'graphql')}; @graphql-hive/gateway ${packageVersion(peers, '@graphql-hive/gateway')}, autocannon ${packageVersion(peers, 'autocannon')}`,
  );
  console.log(`scenario ${scenarioName}; ${JSON.stringify(settings)}`);
  const backend = scenarioName === 'heavy' ? await heavyBackend() : await federationBackend();
  const results: { name: string; label: string; rounds: Round[]; startRssMiB: number }[] = [];
  try {
    for (const name of settings.gateways) {
      const spec = gatewaySpecs[name];
      if (!spec) throw new Error(`unknown gateway ${name}; known: ${Object.keys(gatewaySpecs).join(', ')}`);
      console.log(`measuring ${spec.label}`);
      results.push({ name, label: spec.label, ...(await measure(spec, backend)) });
      await sleep(1_000);
    }
  } finally {
    await backend.stop();
  }

  const rows = results.map((r) => ({
    ...r,
    rps: median(r.rounds.map((x) => x.requestsPerSecond)),
    p50: median(r.rounds.map((x) => x.p50Ms)),
    p95: median(r.rounds.map((x) => x.p95Ms)),
    p99: median(r.rounds.map((x) => x.p99Ms)),
    cpu: median(r.rounds.map((x) => x.cpuPercent)),
    rss: median(r.rounds.map((x) => x.peakRssMiB)),
    requests: r.rounds.reduce((n, x) => n + x.requests, 0),
    // autocannon's error count already includes its timeouts.
    errors: r.rounds.reduce((n, x) => n + x.transportErrors + x.non2xx + x.graphqlErrors, 0),
  }));
  const ours = rows.find((r) => r.name === 'event-federation');
  const ratio = (a: number | undefined, b: number) => (a === undefined ? 'n/a' : `${(a / b).toFixed(2)}×`);
  const table = [
    "| gateway | req/s | req per gateway CPU-s | p50 ms | p95 ms | p99 ms | errors / requests | gateway CPU | peak RSS MiB | this gateway's req/s ÷ | this gateway's p95 ÷ |",
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.label} | ${r.rps.toFixed(1)} | ${r.cpu > 0 ? (r.rps / (r.cpu / 100)).toFixed(1) : 'n/a'} | ${r.p50.toFixed(1)} | ${r.p95.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.errors} / ${r.requests} | ${r.cpu.toFixed(0)}% | ${r.rss.toFixed(0)} | ${r === ours ? '—' : ratio(ours?.rps, r.rps)} | ${r === ours ? '—' : ratio(ours?.p95, r.p95)} |`,
    ),
  ];
  const perRound = rows.map(
    (r) =>
      `- ${r.label}: ${r.rounds.map((x) => `${x.requestsPerSecond.toFixed(1)} req/s (p95 ${x.p95Ms.toFixed(1)} ms, CPU ${x.cpuPercent.toFixed(0)}%)`).join('; ')}; RSS after start ${r.startRssMiB.toFixed(0)} MiB`,
  );
  const command = benchCommand(scenarioName === 'heavy' ? 'bench:heavy-query' : 'bench:gateways');
  const title =
    scenarioName === 'heavy'
      ? "Heavy query: this project's subgraphs, user → 20 orders × 5 items → product"
      : 'Gateway query throughput: graphql-gateways-benchmark shape (four subgraphs, one deep query)';
  const markdown = [
    `# ${title}`,
    '',
    `Run ${new Date().toISOString()} with \`${command}\`.`,
    '',
    ...machine,
    `- Pinning: gateway alone on CPU ${settings.gatewayCpu}; subgraphs and autocannon (own processes) on CPU ${settings.sideCpu}`,
    `- Load: ${settings.connections} connections, warm-up ${settings.warmupSeconds} s, ${settings.rounds} rounds × ${settings.durationSeconds} s; figures are medians of the rounds; errors = transport errors (timeouts included) + non-2xx + responses with GraphQL errors, summed`,
    '',
    ...table,
    '',
    'Rounds:',
    '',
    ...perRound,
    '',
  ].join('\n');
  writeResults(settings.output, markdown);
  console.log(`\n${table.join('\n')}\n\nwritten to ${settings.output}`);
}

await main();
