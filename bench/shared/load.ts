import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { percentile } from './report.ts';

/**
 * The load generator, in its own process (the harness pins it): autocannon with N connections
 * POSTing GraphQL for a fixed time. Prints one JSON line: throughput, latency percentiles (every
 * response's time, so p95 is exact rather than autocannon's fixed p97.5), and what went wrong
 * (transport errors, non-2xx, GraphQL errors).
 *
 * Every request carries `body`, unless `source` names a module whose `createRequestSource`
 * builds each request (autocannon's setupRequest: a distinct body per request) and sees each
 * response; what it recorded comes back as `recorded`.
 */
export interface LoadOptions {
  url: string;
  /** The body of every request (when no `source`). */
  body?: string;
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
  /** A module (absolute path) exporting `createRequestSource(options): RequestSource`. */
  source?: { module: string; options: unknown };
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  meanMs: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  transportErrors: number;
  timeouts: number;
  non2xx: number;
  graphqlErrors: number;
  /** CPU seconds the load generator itself used while it ran (user + system). */
  cpuSeconds: number;
  /** What the request source recorded (with `source`). */
  recorded?: unknown;
}

/** Builds the requests of a run, one at a time, in the load process. */
export interface RequestSource {
  /** The next request's body, and headers over LoadOptions.headers. */
  next(): { body: string; headers?: Record<string, string> };
  /** Each response, with the wall-clock time it arrived (ms since the epoch, sub-ms precision). */
  onResponse?(status: number, body: string, atMs: number): void;
  /** Returned to the harness as LoadResult.recorded. */
  recorded?(): unknown;
}

interface AutocannonRequest {
  method: string;
  body: string;
  headers: Record<string, string>;
  setupRequest?: (request: AutocannonRequest) => AutocannonRequest;
  onResponse: (status: number, body: string) => void;
}
interface AutocannonInstance {
  on(event: 'response', listener: (client: unknown, status: number, bytes: number, ms: number) => void): void;
}
interface AutocannonSummary {
  errors: number;
  timeouts: number;
  non2xx: number;
  duration: number;
}
type Autocannon = (
  options: {
    url: string;
    connections: number;
    duration: number;
    requests: AutocannonRequest[];
    timeout: number;
  },
  done: (error: Error | null, result: AutocannonSummary) => void,
) => AutocannonInstance;

const peers = createRequire(fileURLToPath(new URL('../peers/package.json', import.meta.url)));

/** `onStart` runs once the request source is loaded, just before the first request goes out. */
export async function runLoad(options: LoadOptions, onStart?: () => void): Promise<LoadResult> {
  const autocannon = peers('autocannon') as Autocannon;
  const source = options.source
    ? (
        (await import(options.source.module)) as {
          createRequestSource(options: unknown): RequestSource;
        }
      ).createRequestSource(options.source.options)
    : undefined;
  const headers = { 'content-type': 'application/json', ...options.headers };
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let graphqlErrors = 0;
  onStart?.();
  const cpuBefore = process.cpuUsage();
  return new Promise((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        duration: options.durationSeconds,
        timeout: 10,
        requests: [
          {
            method: 'POST',
            body: options.body ?? '',
            headers,
            ...(source && {
              setupRequest: (request: AutocannonRequest) => {
                const built = source.next();
                return { ...request, body: built.body, headers: { ...headers, ...built.headers } };
              },
            }),
            onResponse: (status, body) => {
              if (status === 200 && body.includes('"errors"')) graphqlErrors++;
              source?.onResponse?.(status, body, performance.timeOrigin + performance.now());
            },
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        const cpu = process.cpuUsage(cpuBefore);
        const sorted = latencies.slice(0, count).sort();
        resolve({
          requests: count,
          requestsPerSecond: count / result.duration,
          meanMs: sorted.reduce((sum, ms) => sum + ms, 0) / count,
          p50Ms: percentile(sorted, 50),
          p95Ms: percentile(sorted, 95),
          p99Ms: percentile(sorted, 99),
          transportErrors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          graphqlErrors,
          cpuSeconds: (cpu.user + cpu.system) / 1e6,
          ...(source?.recorded && { recorded: source.recorded() }),
        });
      },
    );
    instance.on('response', (_client, _status, _bytes, ms) => {
      if (count === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[count++] = ms;
    });
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  // The options, or `@<file>` holding them (large ones: argv strings are limited to 128 KiB).
  const argument = process.argv[2] ?? '{}';
  const options = JSON.parse(
    argument.startsWith('@') ? readFileSync(argument.slice(1), 'utf8') : argument,
  ) as LoadOptions;
  // A first line marks when the load begins (the harness measures CPU from there); the result is
  // the last line.
  const result = await runLoad(options, () =>
    process.stdout.write(`${JSON.stringify({ started: Date.now() })}\n`),
  );
  process.stdout.write(`${JSON.stringify(result)}\n`);
}
