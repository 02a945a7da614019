import { Redis } from 'ioredis';
import type { Logger } from '../../../lib/logger.ts';
import { createMemoryTokenBuckets } from './createMemoryTokenBuckets.ts';
import type { TokenBuckets } from './tokenBuckets.ts';

/**
 * One atomic step of a token bucket, on Redis's clock (TIME) so replicas with skewed clocks
 * agree. The same arithmetic as tokenBuckets.ts: refill since the last take, capped at the
 * capacity; take `cost` if it is there. The key expires once the bucket would be full again
 * (a missing key is a full bucket), so idle callers cost no memory.
 * KEYS[1] bucket; ARGV capacity, refill per second, cost. Returns {allowed, tokens, retryAfterMs}.
 */
const TAKE_SCRIPT = `
local capacity = tonumber(ARGV[1])
local perMs = tonumber(ARGV[2]) / 1000
local cost = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
if tokens == nil then
  tokens = capacity
else
  tokens = math.min(capacity, tokens + math.max(0, now - tonumber(state[2])) * perMs)
end
local allowed = 0
local retry = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  retry = math.ceil((math.min(cost, capacity) - tokens) / perMs)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - tokens) / perMs) + 1000)
return { allowed, tostring(tokens), retry }
`;

type TakeCommand = (
  key: string,
  capacity: number,
  refillPerSecond: number,
  cost: number,
) => Promise<[number, string, number]>;

/**
 * Token buckets in Redis, shared by every gateway replica. Commands fail fast while Redis is
 * away (no offline queue, a command timeout); the buckets then fall back to this process's
 * memory, so limits still hold per replica rather than not at all. That includes a Redis that is
 * away when the gateway starts: it starts on the fallback, and ioredis keeps reconnecting in the
 * background, so the buckets are shared again as soon as Redis answers.
 */
export function createRedisTokenBuckets({
  url,
  keyPrefix,
  logger,
  commandTimeoutMs = 500,
  connectTimeoutMs = 2_000,
}: {
  url: string;
  keyPrefix: string;
  logger: Logger;
  commandTimeoutMs?: number;
  /** Longest wait for one connection attempt, the first one at start included. */
  connectTimeoutMs?: number;
}): TokenBuckets & { connect(): Promise<void>; ping(): Promise<void> } {
  const redis = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: commandTimeoutMs,
    connectTimeout: connectTimeoutMs,
    keyPrefix,
  });
  redis.on('error', (error: Error) => logger.debug({ err: error }, 'redis connection error'));
  redis.defineCommand('takeTokens', { numberOfKeys: 1, lua: TAKE_SCRIPT });
  const takeTokens = (redis as unknown as { takeTokens: TakeCommand }).takeTokens.bind(redis);
  const fallback = createMemoryTokenBuckets();
  let degraded = false;

  return {
    async connect() {
      try {
        await redis.connect();
      } catch (error) {
        // Rate limits are worth keeping, not worth refusing all traffic for: start on this
        // replica's memory (README, "Rate limits"). ioredis goes on reconnecting by itself.
        degraded = true;
        logger.warn(
          { err: error },
          'redis unreachable at start: rate limits fall back to this replica until it answers',
        );
      }
    },
    async ping() {
      await redis.ping();
    },
    async take(key, cost, shape) {
      try {
        const [allowed, tokens, retryAfterMs] = await takeTokens(
          key,
          shape.capacity,
          shape.refillPerSecond,
          cost,
        );
        if (degraded) logger.info('redis is back: rate limits are shared again');
        degraded = false;
        return { allowed: allowed === 1, remaining: Number(tokens), retryAfterMs };
      } catch (error) {
        if (!degraded)
          logger.warn({ err: error }, 'redis unavailable: rate limits fall back to this replica');
        degraded = true;
        return fallback.take(key, cost, shape);
      }
    },
    async close() {
      await fallback.close();
      if (redis.status === 'ready') await redis.quit().catch(() => redis.disconnect());
      else redis.disconnect();
    },
  };
}
