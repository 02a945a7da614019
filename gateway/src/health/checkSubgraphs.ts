import type { Fetcher } from '../subgraphs/createSubgraphDataSource.ts';
import type { SubgraphEndpoint } from '../supergraph/createSupergraphManager.ts';

export interface SubgraphStatus {
  name: string;
  url: string;
  ready: boolean;
  latencyMs: number;
  error?: string;
  /** The subgraph's own readiness checks (database, brokers), as its /ready reported them. */
  checks?: Record<string, unknown>;
}

/** Asks each subgraph's own /ready (its database and brokers), all at once, each with a deadline. */
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
        const checks = checksIn(await response.text());
        return {
          name,
          url,
          ready: response.ok,
          latencyMs: elapsed(),
          ...(response.ok ? {} : { error: `HTTP ${response.status}` }),
          ...(checks ? { checks } : {}),
        };
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

function checksIn(text: string): Record<string, unknown> | undefined {
  try {
    const body = JSON.parse(text) as { checks?: unknown };
    return body.checks && typeof body.checks === 'object'
      ? (body.checks as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}
