import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SUBGRAPH_NAMES, type SubgraphName } from '../../lib/config.ts';
import { spawnPinned, type PinnedProcess } from '../shared/processes.ts';
import { tail, waitForGraphQL } from '../shared/system.ts';

/** The processes of a deployment, each started alone as in production (`npm run start:<name>`). */
export const SERVICES = ['gateway', ...SUBGRAPH_NAMES] as const;
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
  /** Told when a service that failed to start is started again, with the end of its log. */
  onRestart?: (name: ServiceName, log: string) => void;
}

/** Starts per service before giving up (see startServices). */
const START_ATTEMPTS = 3;

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
  const spawn = (name: ServiceName, attempt: number): ServiceProcess => {
    const port = options.basePort + SERVICES.indexOf(name);
    return {
      name,
      process: spawnPinned(
        options.cpus[name],
        [...(options.nodeFlags?.[name] ?? []), ...tsx, join(options.root, entryPoint(name))],
        {
          env: { ...options.env, ...ports, ...options.envFor?.(name) },
          cwd: options.root,
          logFile: join(options.work, `${name}${attempt > 1 ? `.${attempt}` : ''}.log`),
        },
      ),
      url: `http://127.0.0.1:${port}/graphql`,
      metricsUrl: `http://127.0.0.1:${port}/metrics`,
      cpus: options.cpus[name],
      spawnedAt: performance.now(),
    };
  };
  try {
    // One at a time, the gateway last. A subgraph that exits while starting is started again
    // (up to START_ATTEMPTS): on a fresh broker, creating a topic can fail with a transient
    // "does not host this topic-partition", which the services do not retry at start.
    for (const name of SERVICES.filter((n) => n !== 'gateway')) {
      for (let attempt = 1; ; attempt++) {
        const service = spawn(name, attempt);
        try {
          await waitForReady(service.url.replace(/\/graphql$/, ''), service.process);
          started.push(service);
          break;
        } catch (error) {
          await service.process.stop();
          if (attempt >= START_ATTEMPTS) throw error;
          options.onRestart?.(name, tail(service.process.logFile));
        }
      }
    }
    const gateway = spawn('gateway', 1);
    started.unshift(gateway);
    await waitForGraphQL(gateway.url, gateway.process);
    return started;
  } catch (error) {
    await Promise.all(started.map((s) => s.process.stop()));
    throw error;
  }
}
