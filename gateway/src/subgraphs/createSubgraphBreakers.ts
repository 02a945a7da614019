import type { Logger } from '../../../lib/logger.ts';
import { createCircuitBreaker, type CircuitBreaker } from '../../../lib/resilience/createCircuitBreaker.ts';

/**
 * One circuit breaker per subgraph name, kept for the gateway's lifetime: a supergraph reload
 * builds new data sources, and they must find their subgraph's breaker as it was.
 */
export function createSubgraphBreakers({
  threshold,
  halfOpenAfterMs,
  logger,
}: {
  threshold: number;
  halfOpenAfterMs: number;
  logger: Logger;
}) {
  const breakers = new Map<string, CircuitBreaker>();
  return {
    get(name: string): CircuitBreaker {
      let breaker = breakers.get(name);
      if (!breaker) {
        breaker = createCircuitBreaker({ name, threshold, halfOpenAfterMs, logger });
        breakers.set(name, breaker);
      }
      return breaker;
    },
    /** The breakers of these subgraphs, in this order (closed if never used). */
    snapshots(names: string[]) {
      return names.map((name) => this.get(name).snapshot());
    },
  };
}
export type SubgraphBreakers = ReturnType<typeof createSubgraphBreakers>;
