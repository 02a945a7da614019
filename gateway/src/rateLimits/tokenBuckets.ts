/** A bucket's shape: how many tokens it holds when full and how fast it fills again. */
export interface BucketShape {
  capacity: number;
  refillPerSecond: number;
}

export interface TakeResult {
  allowed: boolean;
  /** Tokens left after this take (fractions accrue between whole tokens). */
  remaining: number;
  /** When refused: how long until `cost` tokens are there (or the bucket is full, if it never holds that many). */
  retryAfterMs: number;
}

/**
 * Token buckets by key. `take` removes `cost` tokens when the bucket holds them, atomically;
 * otherwise it removes nothing and says how long to wait. A bucket not seen before is full.
 */
export interface TokenBuckets {
  take(key: string, cost: number, shape: BucketShape): Promise<TakeResult>;
  close(): Promise<void>;
}

/**
 * The refill arithmetic both stores share (the Redis store runs the same steps in Lua):
 * tokens grow continuously at `refillPerSecond` up to `capacity` since the last take.
 */
export function refill(
  state: { tokens: number; atMs: number } | undefined,
  nowMs: number,
  { capacity, refillPerSecond }: BucketShape,
): number {
  if (!state) return capacity;
  const elapsedMs = Math.max(0, nowMs - state.atMs);
  return Math.min(capacity, state.tokens + (elapsedMs * refillPerSecond) / 1_000);
}

export function retryAfterMs(
  tokens: number,
  cost: number,
  { capacity, refillPerSecond }: BucketShape,
): number {
  return Math.ceil(((Math.min(cost, capacity) - tokens) * 1_000) / refillPerSecond);
}
