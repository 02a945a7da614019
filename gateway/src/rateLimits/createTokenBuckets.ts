import type { Config } from '../../../lib/config.ts';
import type { Logger } from '../../../lib/logger.ts';
import { createMemoryTokenBuckets } from './createMemoryTokenBuckets.ts';
import { createRedisTokenBuckets } from './createRedisTokenBuckets.ts';
import type { TokenBuckets } from './tokenBuckets.ts';

/** Redis-backed buckets shared by every replica when REDIS_URL is set, else this process's memory. */
export function createTokenBuckets(
  config: Config,
  logger: Logger,
): TokenBuckets & { connect(): Promise<void> } {
  if (!config.REDIS_URL) return { ...createMemoryTokenBuckets(), connect: async () => {} };
  return createRedisTokenBuckets({ url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger });
}
