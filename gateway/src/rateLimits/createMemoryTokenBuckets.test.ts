import { describe, expect, it } from 'vitest';
import { createMemoryTokenBuckets } from './createMemoryTokenBuckets.ts';

describe('an in-memory token bucket', () => {
  const shape = { capacity: 4, refillPerSecond: 2 };

  it('starts full, refills continuously up to its capacity, and says when to come back', async () => {
    let now = 0;
    const buckets = createMemoryTokenBuckets({ now: () => now });
    expect(await buckets.take('k', 3, shape)).toEqual({ allowed: true, remaining: 1, retryAfterMs: 0 });
    expect(await buckets.take('k', 2, shape)).toEqual({ allowed: false, remaining: 1, retryAfterMs: 500 });
    now += 250; // half a token
    expect(await buckets.take('k', 1, shape)).toMatchObject({ allowed: true, remaining: 0.5 });
    now += 60_000;
    expect(await buckets.take('k', 4, shape)).toMatchObject({ allowed: true, remaining: 0 });
    expect(await buckets.take('other', 4, shape)).toMatchObject({ allowed: true });
  });

  it('a cost larger than the capacity is never granted, and takes nothing', async () => {
    const buckets = createMemoryTokenBuckets({ now: () => 0 });
    expect(await buckets.take('k', 100, shape)).toEqual({ allowed: false, remaining: 4, retryAfterMs: 0 });
    expect(await buckets.take('k', 4, shape)).toMatchObject({ allowed: true });
  });

  it('drops buckets that refilled, sweeping at most once per interval however many callers come', async () => {
    let now = 0;
    const buckets = createMemoryTokenBuckets({ now: () => now, sweepAtSize: 3, sweepEveryMs: 1_000 });
    for (const key of ['a', 'b', 'c']) await buckets.take(key, 1, shape);
    expect(buckets.size).toBe(3);
    now = 10_000; // a, b and c are full again: the same as no bucket at all
    await buckets.take('d', 1, shape);
    expect(buckets.size).toBe(1);

    // Past the threshold again at once, but within the interval: no take pays for a sweep.
    for (const key of ['e', 'f', 'g']) await buckets.take(key, 1, shape);
    now = 10_900;
    await buckets.take('h', 1, shape);
    expect(buckets.size).toBe(5);
    // The next take after the interval sweeps what refilled, and keeps what did not.
    now = 11_000;
    await buckets.take('h', 1, shape);
    expect(buckets.size).toBe(1);
    // A swept bucket was full: its caller finds all its tokens.
    expect(await buckets.take('a', 4, shape)).toMatchObject({ allowed: true });
  });
});
