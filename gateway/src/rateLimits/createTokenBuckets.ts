import type { Config } from '../../../lib/config.ts';
import type { Logger } from '../../../lib/logger.ts';
import { createMemoryTokenBuckets } from './createMemoryTokenBuckets.ts';
import { createRedisTokenBuckets } from './createRedisTokenBuckets.ts';
import type { TokenBuckets } from './tokenBuckets.ts';

export interface GatewayTokenBuckets extends TokenBuckets {
  /** Connects to the store, if it has one to connect to; never fails (Redis falls back to memory). */
  connect(): Promise<void>;
  /** What readiness reports about the store, by name: `redis` with REDIS_URL, else nothing. */
  checks: Record<string, () => Promise<unknown>>;
}

/** Redis-backed buckets shared by every replica when REDIS_URL is set, else this process's memory. */
export function createTokenBuckets(config: Config, logger: Logger): GatewayTokenBuckets {
  if (!config.REDIS_URL) return { ...createMemoryTokenBuckets(), connect: async () => {}, checks: {} };
  const buckets = createRedisTokenBuckets({
    url: config.REDIS_URL,
    keyPrefix: config.REDIS_KEY_PREFIX,
    logger,
  });
  return { ...buckets, checks: { redis: () => buckets.ping() } };
}
