import type { Fetcher } from '../subgraphs/createSubgraphDataSource.ts';
import type { SubgraphEndpoint } from '../supergraph/createSupergraphManager.ts';

export interface SubgraphStatus {
  name: string;
  url: string;
  ready: boolean;
  latencyMs: number;
  error?: string;
}

/** Asks each subgraph's own /ready (its database included), all at once, each with a deadline. */
export async function checkSubgraphs(
  endpoints: SubgraphEndpoint[],
  { fetcher, timeoutMs }: { fetcher: Fetcher; timeoutMs: number },
): Promise<SubgraphStatus[]> {
  return Promise.all(
    endpoints.map(async ({ name, url }) => {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      try {
        const response = await fetcher(new URL('/ready', url).toString(), {
          method: 'GET',
          signal: AbortSignal.timeout(timeoutMs),
        });
        await response.text();
        return response.ok
          ? { name, url, ready: true, latencyMs: elapsed() }
          : { name, url, ready: false, latencyMs: elapsed(), error: `HTTP ${response.status}` };
      } catch (error) {
        const timedOut = (error as Error).name === 'TimeoutError';
        return {
          name,
          url,
          ready: false,
          latencyMs: elapsed(),
          error: timedOut ? 'timeout' : (error as Error).message,
        };
      }
    }),
  );
}
