import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SubgraphName } from '../../lib/config.ts';
import { spawnPinned, type PinnedProcess } from '../shared/processes.ts';
import { tail, waitForGraphQL } from '../shared/system.ts';

/** The processes of a deployment, each started alone as in production (`npm run start:<name>`). */
export const SERVICES = [
  'gateway',
  'users',
  'products',
  'orders',
  'payments',
  'analytics',
  'notifications',
] as const;
export type ServiceName = (typeof SERVICES)[number];

export interface ServiceProcess {
  name: ServiceName;
  process: PinnedProcess;
  /** Its GraphQL endpoint. */
  url: string;
  /** Its Prometheus endpoint. */
  metricsUrl: string;
  cpus: string;
  /** performance.now() when it was spawned: where its --cpu-prof profile's clock starts, near enough. */
  spawnedAt: number;
}

export interface StartServicesOptions {
  root: string;
  work: string;
  /** First of seven consecutive ports: the gateway, then the subgraphs in SERVICES order. */
  basePort: number;
  /** taskset -c list per process. */
  cpus: Record<ServiceName, string>;
  /** Environment of every process (brokers, database, secrets, limits). */
  env: NodeJS.ProcessEnv;
  /** Extra node flags per process (--cpu-prof). */
  nodeFlags?: Partial<Record<ServiceName, string[]>>;
  /** Variables of one process only, over `env`. */
  envFor?: (name: ServiceName) => NodeJS.ProcessEnv;
}

const entryPoint = (name: ServiceName) =>
  name === 'gateway' ? 'gateway/src/main.ts' : `subgraphs/${name}/src/main.ts`;

/** Ports and routing: every process gets the same variables, so each finds the others. */
export function serviceEnv(basePort: number): Record<string, string> {
  const env: Record<string, string> = { PORT: String(basePort) };
  SERVICES.forEach((name, index) => {
    if (name === 'gateway') return;
    const upper = name.toUpperCase() as Uppercase<SubgraphName>;
    env[`${upper}_PORT`] = String(basePort + index);
    env[`SUBGRAPH_${upper}_URL`] = `http://127.0.0.1:${basePort + index}/graphql`;
  });
  return env;
}

async function waitForReady(base: string, process: PinnedProcess, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && process.child.exitCode === null) {
    const ok = await fetch(`${base}/ready`)
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`${base}/ready never answered; see ${process.logFile}:\n${tail(process.logFile)}`);
}

/**
 * Starts the gateway and the six subgraphs as seven pinned processes and waits until each is
 * ready (its database migrated, its brokers connected). Stops those already started on failure.
 */
export async function startServices(options: StartServicesOptions): Promise<ServiceProcess[]> {
  const tsx = ['--import', import.meta.resolve('tsx')];
  const ports = serviceEnv(options.basePort);
  const started: ServiceProcess[] = [];
  try {
    // Subgraphs first (in parallel: each migrates its own schema), then the gateway.
    const subgraphs = SERVICES.filter((name) => name !== 'gateway');
    for (const name of subgraphs) {
      const port = options.basePort + SERVICES.indexOf(name);
      started.push({
        name,
        process: spawnPinned(
          options.cpus[name],
          [...(options.nodeFlags?.[name] ?? []), ...tsx, join(options.root, entryPoint(name))],
          {
            env: { ...options.env, ...ports, ...options.envFor?.(name) },
            cwd: options.root,
            logFile: join(options.work, `${name}.log`),
          },
        ),
        url: `http://127.0.0.1:${port}/graphql`,
        metricsUrl: `http://127.0.0.1:${port}/metrics`,
        cpus: options.cpus[name],
        spawnedAt: performance.now(),
      });
    }
    await Promise.all(started.map((s) => waitForReady(s.url.replace(/\/graphql$/, ''), s.process)));
    const gateway: ServiceProcess = {
      name: 'gateway',
      process: spawnPinned(
        options.cpus.gateway,
        [...(options.nodeFlags?.gateway ?? []), ...tsx, join(options.root, entryPoint('gateway'))],
        {
          env: { ...options.env, ...ports, ...options.envFor?.('gateway') },
          cwd: options.root,
          logFile: join(options.work, 'gateway.log'),
        },
      ),
      url: `http://127.0.0.1:${options.basePort}/graphql`,
      metricsUrl: `http://127.0.0.1:${options.basePort}/metrics`,
      cpus: options.cpus.gateway,
      spawnedAt: performance.now(),
    };
    started.unshift(gateway);
    await waitForGraphQL(gateway.url, gateway.process);
    return started;
  } catch (error) {
    await Promise.all(started.map((s) => s.process.stop()));
    throw error;
  }
}
