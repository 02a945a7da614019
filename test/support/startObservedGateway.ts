import { createServer, request as httpRequest, type Server } from 'node:http';
import type { Writable } from 'node:stream';
import { SUBGRAPH_NAMES, type Config } from '../../lib/config.ts';
import { createLogger } from '../../lib/logger.ts';
import { createGateway, type Gateway } from '../../gateway/src/server.ts';
import { listen } from '../../lib/http/listen.ts';
import type { TestSystem } from './startTestSystem.ts';

export interface ObservedGateway {
  url: string;
  gateway: Gateway;
  /** Requests each subgraph has received from this gateway (GraphQL calls and probes alike). */
  calls: Record<string, number>;
  /** The bodies of the requests each subgraph has received, oldest first. */
  bodies: Record<string, string[]>;
  totalCalls(): number;
  /** From now on the proxy of `name` takes requests and never answers them (a hung subgraph); `false` heals it. */
  hang(name: string, hung?: boolean): void;
  /** From now on the proxy of `name` keeps requests until the returned function releases them all. */
  hold(name: string): () => void;
  stop(): Promise<void>;
}

/**
 * A second gateway over a running test system whose traffic to every subgraph passes through a
 * counting proxy: tests can then say "this reached no subgraph" through observation alone.
 */
export async function startObservedGateway(
  system: TestSystem,
  overrides: Partial<Config> = {},
  { logDestination }: { logDestination?: Writable } = {},
): Promise<ObservedGateway> {
  const calls: Record<string, number> = {};
  const bodies: Record<string, string[]> = {};
  const hung = new Set<string>();
  const held = new Map<string, (() => void)[]>();
  const proxies: Server[] = [];
  const subgraphUrls: Record<string, string> = {};
  for (const name of SUBGRAPH_NAMES) {
    const target = new URL(system.subgraphs[name].url);
    calls[name] = 0;
    const received: string[] = (bodies[name] = []);
    const proxy = createServer((req, res) => {
      calls[name] = (calls[name] ?? 0) + 1;
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      const body = new Promise<Buffer>((resolve) =>
        req.on('end', () => {
          const whole = Buffer.concat(chunks);
          received.push(whole.toString('utf8'));
          resolve(whole);
        }),
      );
      if (hung.has(name)) return;
      const forward = () => {
        const upstream = httpRequest(
          {
            host: target.hostname,
            port: target.port,
            path: req.url,
            method: req.method,
            headers: req.headers,
          },
          (reply) => {
            res.writeHead(reply.statusCode ?? 502, reply.headers);
            reply.pipe(res);
          },
        );
        upstream.on('error', () => res.destroy());
        void body.then((whole) => upstream.end(whole));
      };
      const queue = held.get(name);
      if (queue) queue.push(forward);
      else forward();
    });
    const port = await listen(proxy, 0, '127.0.0.1');
    proxies.push(proxy);
    subgraphUrls[name] = `http://127.0.0.1:${port}/graphql`;
  }
  const config = { ...system.config, ...overrides };
  const gateway = createGateway({
    config,
    logger: createLogger({
      level: config.LOG_LEVEL,
      service: 'observed-gateway',
      destination: logDestination,
    }),
    secrets: system.secrets,
    subgraphUrls,
  });
  const { url } = await gateway.start({ port: 0, host: '127.0.0.1' });
  return {
    url,
    gateway,
    calls,
    bodies,
    totalCalls: () => Object.values(calls).reduce((sum, n) => sum + n, 0),
    hang(name, hang = true) {
      if (hang) hung.add(name);
      else hung.delete(name);
    },
    hold(name) {
      const queue: (() => void)[] = [];
      held.set(name, queue);
      return () => {
        if (held.get(name) === queue) held.delete(name);
        for (const forward of queue.splice(0)) forward();
      };
    },
    async stop() {
      await gateway.stop();
      for (const proxy of proxies) {
        proxy.closeAllConnections();
        await new Promise((resolve) => proxy.close(resolve));
      }
    },
  };
}
