import { circuitBreaker, CircuitState, ConsecutiveBreaker, handleAll, handleWhen } from 'cockatiel';
import type { Logger } from '../logger.ts';

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';

export interface BreakerSnapshot {
  name: string;
  state: BreakerState;
  /** Failures in a row counted so far (the circuit opens at `threshold`). */
  consecutiveFailures: number;
  threshold: number;
  halfOpenAfterMs: number;
  /** When the circuit last opened; null while it is closed. */
  openedAt: string | null;
  lastFailure: { at: string; message: string } | null;
}

export interface CircuitBreakerOptions {
  /** The dependency it guards, for logs and status. */
  name: string;
  /** Consecutive failures that open the circuit. */
  threshold: number;
  /** How long an open circuit fails fast before one trial call (half-open) may close it. */
  halfOpenAfterMs: number;
  /** Which errors count as the dependency failing (default: every error). */
  isFailure?: (error: unknown) => boolean;
  logger?: Logger;
}

const stateNames: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

/**
 * A cockatiel circuit breaker on consecutive failures, shared by the gateway (one per subgraph)
 * and the order saga's subgraph clients, with what a status page needs to show about it.
 * An open circuit rejects with cockatiel's BrokenCircuitError; after `halfOpenAfterMs` the next
 * call goes through as a trial and closes the circuit when it succeeds, with no operator.
 */
export function createCircuitBreaker({
  name,
  threshold,
  halfOpenAfterMs,
  isFailure,
  logger,
}: CircuitBreakerOptions) {
  const policy = circuitBreaker(isFailure ? handleWhen(isFailure) : handleAll, {
    halfOpenAfter: halfOpenAfterMs,
    breaker: new ConsecutiveBreaker(threshold),
  });
  let consecutiveFailures = 0;
  let openedAt: Date | null = null;
  let lastFailure: { at: Date; message: string } | null = null;

  policy.onFailure(({ handled, reason }) => {
    if (!handled) return;
    consecutiveFailures += 1;
    const message = 'error' in reason ? reason.error.message : 'failed';
    lastFailure = { at: new Date(), message };
  });
  policy.onSuccess(() => {
    consecutiveFailures = 0;
  });
  policy.onBreak(() => {
    openedAt = new Date();
    logger?.warn({ dependency: name, lastFailure: lastFailure?.message }, `circuit to ${name} opened`);
  });
  policy.onHalfOpen(() =>
    logger?.info({ dependency: name }, `circuit to ${name} half-open: trying one call`),
  );
  policy.onReset(() => {
    openedAt = null;
    consecutiveFailures = 0;
    logger?.info({ dependency: name }, `circuit to ${name} closed again`);
  });

  return {
    name,
    execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
      return policy.execute(fn);
    },
    get state(): BreakerState {
      return stateNames[policy.state];
    },
    snapshot(): BreakerSnapshot {
      return {
        name,
        state: stateNames[policy.state],
        consecutiveFailures,
        threshold,
        halfOpenAfterMs,
        openedAt: openedAt?.toISOString() ?? null,
        lastFailure: lastFailure && { at: lastFailure.at.toISOString(), message: lastFailure.message },
      };
    },
  };
}
export type CircuitBreaker = ReturnType<typeof createCircuitBreaker>;
