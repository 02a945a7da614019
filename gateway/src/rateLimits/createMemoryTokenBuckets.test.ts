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
});
