import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/logger.ts';
import { createManualClock } from '../../../test/support/createManualClock.ts';
import { createMetricsFeed, METRICS_PUSH_INTERVAL_MS } from './createMetricsFeed.ts';
import type { MetricsSnapshot } from './store.ts';

/**
 * The analytics database as the feed reads it: the shared change counter and the figures at it.
 * `apply` is a change any replica committed (the counter moves); the figures follow it.
 */
function createFigures() {
  let version = 0;
  const snapshotAt = (v: number): MetricsSnapshot => ({
    version: v,
    totalOrders: v,
    confirmedOrders: v,
    cancelledOrders: 0,
    revenueCents: 100 * v,
    updatedAt: new Date(0),
    readAt: new Date(0),
    days: new Map(),
    products: [],
  });
  return {
    apply: () => (version += 1),
    get version() {
      return version;
    },
    store: {
      version: async () => version,
      snapshot: async () => snapshotAt(version),
    },
  };
}

const logger = createLogger({ level: 'silent', service: 'test' });
const stops: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
});

function startFeed() {
  const clock = createManualClock(1_000_000);
  const figures = createFigures();
  const feed = createMetricsFeed({ store: figures.store, logger, clock });
  feed.start();
  stops.push(() => feed.stop());
  return { clock, figures, feed };
}

/** Reads a subscription in the background, noting when (on the feed's clock) each push came. */
function record(
  iterator: AsyncIterableIterator<MetricsSnapshot>,
  clock: { now(): number },
): { versions: number[]; at: number[] } {
  const seen = { versions: [] as number[], at: [] as number[] };
  void (async () => {
    for await (const snapshot of iterator) {
      seen.versions.push(snapshot.version);
      seen.at.push(clock.now());
    }
  })();
  return seen;
}

describe('the salesMetricsUpdated feed', () => {
  it('sends a new subscriber the current figures at once, before any change', async () => {
    const { clock, figures, feed } = startFeed();
    figures.apply();
    figures.apply();
    const seen = record(await feed.subscribe(), clock);
    await clock.advance(0);
    expect(seen.versions).toEqual([2]);
  });

  it('pushes changes arriving every 10 ms at most every 250 ms, and the last state always goes out', async () => {
    const { clock, figures, feed } = startFeed();
    const seen = record(await feed.subscribe(), clock);
    await clock.advance(0);
    const subscribedAt = clock.now();
    // Two seconds of changes applied by this replica, one every 10 ms.
    for (let i = 0; i < 200; i += 1) {
      figures.apply();
      feed.changed();
      await clock.advance(10);
    }
    await clock.advance(METRICS_PUSH_INTERVAL_MS * 2);

    const pushes = seen.at.slice(1).map((at) => at - subscribedAt);
    const gaps = pushes.slice(1).map((at, i) => at - pushes[i]!);
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(METRICS_PUSH_INTERVAL_MS);
    // Not fewer either: one push per interval while changes keep coming.
    expect(pushes.length).toBeGreaterThanOrEqual(2_000 / METRICS_PUSH_INTERVAL_MS);
    expect(seen.versions.at(-1)).toBe(figures.version);
    // Each push newer than the one before.
    expect(seen.versions).toEqual([...new Set(seen.versions)].sort((a, b) => a - b));
  });

  it('pushes a change another replica applied within one interval', async () => {
    const { clock, figures, feed } = startFeed();
    const seen = record(await feed.subscribe(), clock);
    await clock.advance(0);
    figures.apply(); // no changed(): this replica did not apply it
    await clock.advance(METRICS_PUSH_INTERVAL_MS);
    expect(seen.versions).toEqual([0, 1]);
  });

  it('sends nothing when nothing changed', async () => {
    const { clock, feed } = startFeed();
    const seen = record(await feed.subscribe(), clock);
    await clock.advance(0);
    feed.changed(); // applied, but changed no figure (a duplicate event, say)
    await clock.advance(METRICS_PUSH_INTERVAL_MS * 4);
    expect(seen.versions).toEqual([0]);
  });

  it('ends every subscription when stopped', async () => {
    const { clock, feed } = startFeed();
    const iterator = await feed.subscribe();
    expect((await iterator.next()).done).toBe(false);
    const next = iterator.next();
    await feed.stop();
    await clock.advance(0);
    expect(await next).toEqual({ done: true, value: undefined });
  });
});
