import type { Logger } from '../../../lib/logger.ts';
import type { Metrics } from '../../../lib/observability/createMetrics.ts';
import { createCircuitBreaker, type CircuitBreaker } from '../../../lib/resilience/createCircuitBreaker.ts';

/**
 * One circuit breaker per subgraph name, kept for the gateway's lifetime: a supergraph reload
 * builds new data sources, and they must find their subgraph's breaker as it was.
 */
export function createSubgraphBreakers({
  threshold,
  halfOpenAfterMs,
  logger,
  metrics,
}: {
  threshold: number;
  halfOpenAfterMs: number;
  logger: Logger;
  /** `gateway_circuit_breaker_state` per subgraph (0 closed, 1 half-open, 2 open, 3 isolated). */
  metrics?: Metrics;
}) {
  const breakers = new Map<string, CircuitBreaker>();
  const STATE_VALUES = { closed: 0, 'half-open': 1, open: 2, isolated: 3 } as const;
  metrics?.gauge({
    name: 'gateway_circuit_breaker_state',
    help: "A subgraph's circuit at the gateway: 0 closed, 1 half-open, 2 open, 3 isolated",
    labelNames: ['subgraph'],
    collect() {
      for (const [name, breaker] of breakers) this.set({ subgraph: name }, STATE_VALUES[breaker.state]);
    },
  });
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
