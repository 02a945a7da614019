import { systemClock, type Clock } from '../../../lib/clock.ts';
import { createEventHub } from '../../../lib/graphql/createEventHub.ts';
import { liveValue } from '../../../lib/graphql/liveValue.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { AnalyticsStore, MetricsSnapshot } from './store.ts';

/** API.md: salesMetricsUpdated is pushed at most this often. */
export const METRICS_PUSH_INTERVAL_MS = 250;

/**
 * The pushes of `salesMetricsUpdated` from one replica: to each subscriber the current figures
 * at once, then the figures after each change.
 *
 * Several replicas split the `order-events` partitions, so each applies only part of the changes,
 * yet each one's subscribers must see the global metrics. They share the analytics database, and
 * every change bumps its `metrics_version` counter in the change's own transaction. So:
 * - a change this replica applied pushes at once (`changed()`, from the consumer);
 * - while anyone is subscribed, the replica reads the counter every interval and pushes when it
 *   moved (changes applied by the other replicas);
 * - pushes are throttled to one per interval, with a trailing push, so the last state always
 *   goes out; a push reads the metrics once, for all subscribers, and is skipped when the
 *   version is the one last pushed.
 * Polling one row costs a cheap query per replica per 250 ms, only while subscribed, and works the
 * same on PostgreSQL and on embedded PGlite (which has no LISTEN/NOTIFY between processes).
 */
export function createMetricsFeed({
  store,
  logger,
  intervalMs = METRICS_PUSH_INTERVAL_MS,
  clock = systemClock,
}: {
  store: Pick<AnalyticsStore, 'snapshot' | 'version'>;
  logger: Logger;
  intervalMs?: number;
  /** The throttle's and the poll's time. */
  clock?: Clock;
}) {
  const hub = createEventHub<MetricsSnapshot>();
  let lastPushedVersion = -1;
  let lastPushAt = 0;
  let pending = false;
  let pushing: Promise<void> | undefined;
  let cancelPush: (() => void) | undefined;
  let cancelPoll: (() => void) | undefined;
  let polling = false;
  let stopped = false;

  function schedule(): void {
    if (stopped || cancelPush || pushing || !pending) return;
    const waitMs = Math.max(0, lastPushAt + intervalMs - clock.now());
    cancelPush = clock.setTimeout(() => {
      cancelPush = undefined;
      pushing = push().finally(() => {
        pushing = undefined;
        schedule();
      });
    }, waitMs);
  }

  async function push(): Promise<void> {
    pending = false;
    lastPushAt = clock.now();
    if (hub.size === 0) return;
    try {
      const snapshot = await store.snapshot();
      if (snapshot.version === lastPushedVersion) return;
      lastPushedVersion = snapshot.version;
      hub.publish(snapshot);
    } catch (error) {
      logger.warn({ err: error }, 'reading the sales metrics failed; the next change retries');
    }
  }

  async function poll(): Promise<void> {
    if (polling || hub.size === 0) return;
    polling = true;
    try {
      if ((await store.version()) !== lastPushedVersion) changed();
    } catch (error) {
      logger.warn({ err: error }, 'polling the sales metrics version failed');
    } finally {
      polling = false;
    }
  }

  function changed(): void {
    pending = true;
    schedule();
  }

  return {
    changed,

    start(): void {
      stopped = false;
      const pollEveryInterval = () => {
        cancelPoll = clock.setTimeout(() => {
          pollEveryInterval();
          void poll();
        }, intervalMs);
      };
      if (!cancelPoll) pollEveryInterval();
    },

    /**
     * The current figures at once, then the figures after each change (API.md: "pushed after
     * each change, at most every 250 ms"). The figures at once make every subscription whole on
     * its own: a client that just connected, or a gateway resubscribing after its socket dropped
     * (pushes sent into a dead socket are lost), never waits for the next change to be current.
     * Marked as a live value (lib/graphql/liveValue.ts): the gateway, which shares one upstream
     * between identical subscribers, hands the latest figures to those who join later.
     * Pushes not newer than what this subscriber already got are skipped.
     */
    async subscribe(): Promise<AsyncIterableIterator<MetricsSnapshot>> {
      // Listening before reading: a change committed meanwhile is pushed after, not lost.
      const live = hub.subscribe();
      let current: MetricsSnapshot | undefined;
      try {
        current = await store.snapshot();
      } catch (error) {
        await live.return?.();
        throw error;
      }
      let sentVersion = -1;
      const iterator: AsyncIterableIterator<MetricsSnapshot> = {
        [Symbol.asyncIterator]() {
          return iterator;
        },
        async next() {
          if (current) {
            const first = current;
            current = undefined;
            sentVersion = first.version;
            return { done: false, value: first };
          }
          for (;;) {
            const result = await live.next();
            if (result.done || result.value.version > sentVersion) {
              if (!result.done) sentVersion = result.value.version;
              return result;
            }
          }
        },
        return: () => {
          current = undefined;
          return live.return!();
        },
      };
      return liveValue(iterator);
    },

    /** Ends every subscription and the timers. Idempotent. */
    async stop(): Promise<void> {
      stopped = true;
      cancelPoll?.();
      cancelPoll = undefined;
      cancelPush?.();
      cancelPush = undefined;
      await pushing;
      hub.close();
    },
  };
}
export type MetricsFeed = ReturnType<typeof createMetricsFeed>;
