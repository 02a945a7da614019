import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Logger } from '../logger.ts';

export interface PollingLoopOptions {
  /** Names the loop in logs. */
  name: string;
  logger: Logger;
  /**
   * One round of work. Resolves with how long to wait before the next round (0: at once, there
   * is more), or undefined for the regular poll interval. A rejection backs off exponentially
   * with jitter and tries again: nothing is skipped.
   */
  step: () => Promise<number | undefined>;
  pollIntervalMs: number;
  maxBackoffMs?: number;
}

/**
 * The background loop of the relays (outbox → stream, notifications → queue): poll, wake early
 * on notify(), back off while a dependency is down, and stop between rounds.
 */
export function createPollingLoop({
  name,
  logger,
  step,
  pollIntervalMs,
  maxBackoffMs = 5_000,
}: PollingLoopOptions) {
  const backoffFactory = new ExponentialBackoff({ initialDelay: 100, maxDelay: maxBackoffMs });
  let running = false;
  let loop: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  let backoff: IBackoff<unknown> | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      }
      wake = done;
    });

  async function run() {
    while (running) {
      try {
        const waitMs = await step();
        if (backoff) logger.info({ loop: name }, 'dependency reachable again: resumed');
        backoff = undefined;
        if (waitMs !== 0) await sleep(waitMs ?? pollIntervalMs);
      } catch (error) {
        backoff = backoff ? backoff.next(undefined) : backoffFactory.next();
        logger.warn(
          { err: error, loop: name, retryInMs: Math.round(backoff.duration) },
          `${name} failed; retrying`,
        );
        await sleep(backoff.duration);
      }
    }
  }

  return {
    start() {
      if (running) return;
      running = true;
      loop = run();
    },
    /** Run the next round now instead of at the next poll. */
    notify() {
      wake?.();
    },
    /** Resolves once the round in progress has finished. Idempotent. */
    async stop() {
      running = false;
      wake?.();
      await loop;
    },
  };
}
