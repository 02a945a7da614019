import { refill, retryAfterMs, type TokenBuckets } from './tokenBuckets.ts';

/** Buckets kept before full ones are swept out (a full bucket is the same as no bucket). */
const SWEEP_AT_SIZE = 10_000;

/** Token buckets in this process's memory: one gateway replica (no REDIS_URL), or Redis's fallback. */
export function createMemoryTokenBuckets({
  now = () => Date.now(),
}: { now?: () => number } = {}): TokenBuckets {
  const buckets = new Map<
    string,
    { tokens: number; atMs: number; capacity: number; refillPerSecond: number }
  >();

  function sweep(nowMs: number) {
    for (const [key, bucket] of buckets) {
      if (refill(bucket, nowMs, bucket) >= bucket.capacity) buckets.delete(key);
    }
  }

  return {
    async take(key, cost, shape) {
      const nowMs = now();
      if (buckets.size >= SWEEP_AT_SIZE) sweep(nowMs);
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
