import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { percentile } from '../shared/report.ts';

/**
 * The load generator, in its own process (the harness pins it to the subgraphs' core):
 * autocannon with N connections POSTing one GraphQL body for a fixed time. Prints one JSON
 * line: throughput, latency percentiles (every response's time, so p95 is exact rather than
 * autocannon's fixed p97.5), and what went wrong (transport errors, non-2xx, GraphQL errors).
 */
export interface LoadOptions {
  url: string;
  body: string;
  headers: Record<string, string>;
  connections: number;
  durationSeconds: number;
}

export interface LoadResult {
  requests: number;
  requestsPerSecond: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  transportErrors: number;
  timeouts: number;
  non2xx: number;
  graphqlErrors: number;
}

interface AutocannonRequest {
  method: string;
  body: string;
  headers: Record<string, string>;
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

export function runLoad(options: LoadOptions): Promise<LoadResult> {
  const autocannon = peers('autocannon') as Autocannon;
  let latencies = new Float64Array(1 << 16);
  let count = 0;
  let graphqlErrors = 0;
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
            body: options.body,
            headers: { 'content-type': 'application/json', ...options.headers },
            onResponse: (status, body) => {
              if (status === 200 && body.includes('"errors"')) graphqlErrors++;
            },
          },
        ],
      },
      (error, result) => {
        if (error) return reject(error);
        const sorted = latencies.slice(0, count).sort();
        resolve({
          requests: count,
          requestsPerSecond: count / result.duration,
          p50Ms: percentile(sorted, 50),
          p95Ms: percentile(sorted, 95),
          p99Ms: percentile(sorted, 99),
          transportErrors: result.errors,
          timeouts: result.timeouts,
          non2xx: result.non2xx,
          graphqlErrors,
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
  const options = JSON.parse(process.argv[2] ?? '{}') as LoadOptions;
  process.stdout.write(`${JSON.stringify(await runLoad(options))}\n`);
}
