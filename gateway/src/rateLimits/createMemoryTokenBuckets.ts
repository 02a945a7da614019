import { refill, retryAfterMs, type TokenBuckets } from './tokenBuckets.ts';

export interface MemoryTokenBucketsOptions {
  now?: () => number;
  /** Buckets held before full ones are swept out (a full bucket is the same as no bucket). */
  sweepAtSize?: number;
  /** Least time between two sweeps. */
  sweepEveryMs?: number;
}

/**
 * Token buckets in this process's memory: one gateway replica (no REDIS_URL), or Redis's fallback.
 * `size` is how many buckets it holds now.
 */
export function createMemoryTokenBuckets({
  now = () => Date.now(),
  sweepAtSize = 10_000,
  sweepEveryMs = 1_000,
}: MemoryTokenBucketsOptions = {}): TokenBuckets & { readonly size: number } {
  const buckets = new Map<
    string,
    { tokens: number; atMs: number; capacity: number; refillPerSecond: number }
  >();
  let lastSweepMs = -Infinity;

  // A sweep reads every bucket. Run on each take past the threshold, a flood of callers that
  // keeps more than `sweepAtSize` buckets not yet full (many IPs, each just refused) made every
  // take cost a scan of all of them; at most one sweep per `sweepEveryMs` caps that at one scan
  // a second however fast they come, while what the map holds between sweeps stays bounded by
  // the callers of one interval.
  function sweep(nowMs: number) {
    lastSweepMs = nowMs;
    for (const [key, bucket] of buckets) {
      if (refill(bucket, nowMs, bucket) >= bucket.capacity) buckets.delete(key);
    }
  }

  return {
    get size() {
      return buckets.size;
    },
    async take(key, cost, shape) {
      const nowMs = now();
      if (buckets.size >= sweepAtSize && nowMs - lastSweepMs >= sweepEveryMs) sweep(nowMs);
      const tokens = refill(buckets.get(key), nowMs, shape);
      const allowed = tokens >= cost;
      const remaining = allowed ? tokens - cost : tokens;
      buckets.set(key, { tokens: remaining, atMs: nowMs, ...shape });
      return { allowed, remaining, retryAfterMs: allowed ? 0 : retryAfterMs(remaining, cost, shape) };
    },
    async close() {
      buckets.clear();
    },
  };
}
