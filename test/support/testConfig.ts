import { loadConfig, type Config } from '../../lib/config.ts';

/**
 * Tests run on in-memory PGlite by default, and on a real PostgreSQL when DATABASE_URL is set.
 * Under CI=true a real PostgreSQL is required: a missing one fails the run, it never skips.
 */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const databaseUrl = process.env['DATABASE_URL'];
  if (process.env['CI'] === 'true' && !databaseUrl) {
    throw new Error('CI=true requires DATABASE_URL: these tests must run against a real PostgreSQL');
  }
  return loadConfig({
    NODE_ENV: 'test',
    LOG_LEVEL: process.env['LOG_LEVEL'] ?? 'silent',
    DATA_DIR: ':memory:',
    HOST: '127.0.0.1',
    ...(databaseUrl ? { DATABASE_URL: databaseUrl } : {}),
    ...brokersFromEnvironment(),
    ...redisFromEnvironment(),
    // Every suite calls from 127.0.0.1 and signs up many users: rate limits out of the way,
    // except in the suites about them (test/rateLimits.test.ts), which set their own.
    RATE_LIMIT_CAPACITY: '1000000',
    RATE_LIMIT_REFILL_PER_SECOND: '1000000',
    RATE_LIMIT_AUTH_CAPACITY: '1000000',
    RATE_LIMIT_AUTH_REFILL_PER_SECOND: '1000000',
    ...overrides,
  });
}

/**
 * Kafka and RabbitMQ for the tests: from KAFKA_BROKERS / RABBITMQ_URL when set (and required
 * under CI=true, where the real servers must be used), else the in-memory adapters.
 */
function brokersFromEnvironment(): Record<string, string> {
  const kafka = process.env['KAFKA_BROKERS'];
  const rabbit = process.env['RABBITMQ_URL'];
  if (process.env['CI'] === 'true' && (!kafka || !rabbit)) {
    throw new Error(
      'CI=true requires KAFKA_BROKERS and RABBITMQ_URL: these tests must run against real brokers',
    );
  }
  return { ...(kafka ? { KAFKA_BROKERS: kafka } : {}), ...(rabbit ? { RABBITMQ_URL: rabbit } : {}) };
}

/**
 * Redis for the gateway's shared rate limits: from REDIS_URL when set (required under CI=true),
 * else in-memory buckets.
 */
function redisFromEnvironment(): Record<string, string> {
  const redis = process.env['REDIS_URL'];
  if (process.env['CI'] === 'true' && !redis) {
    throw new Error('CI=true requires REDIS_URL: these tests must run against a real Redis');
  }
  return redis ? { REDIS_URL: redis } : {};
}

/** A schema prefix unique to this run, so parallel test files never share tables. */
export function uniqueSchemaPrefix(): string {
  return `t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}_`;
}
