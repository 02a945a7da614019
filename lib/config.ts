import { z } from 'zod';

/** The subgraphs of the supergraph, in routing order. Names match supergraph.yaml. */
export const SUBGRAPH_NAMES = [
  'users',
  'products',
  'orders',
  'payments',
  'analytics',
  'notifications',
] as const;
export type SubgraphName = (typeof SUBGRAPH_NAMES)[number];

export const DEFAULT_PORTS: Record<SubgraphName | 'gateway', number> = {
  gateway: 4000,
  users: 4001,
  products: 4002,
  orders: 4003,
  payments: 4004,
  analytics: 4005,
  notifications: 4006,
};

const port = z.coerce.number().int().min(0).max(65_535);
const optionalSecret = z
  .string()
  .min(32, 'must be at least 32 characters (use `openssl rand -base64 48`)')
  .optional();
const optionalUrl = z.url().optional();
/** `true`/`false` (also `1`/`0`): z.coerce.boolean would read "false" as true. */
const booleanFlag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

/**
 * Every environment variable the system reads, checked once at start. A bad value fails fast
 * with a message naming the variable (see ConfigError). Defaults carry their unit in the name.
 */
export const configSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    HOST: z.string().min(1).default('127.0.0.1'),
    PORT: port.default(DEFAULT_PORTS.gateway),
    USERS_PORT: port.default(DEFAULT_PORTS.users),
    PRODUCTS_PORT: port.default(DEFAULT_PORTS.products),
    ORDERS_PORT: port.default(DEFAULT_PORTS.orders),
    PAYMENTS_PORT: port.default(DEFAULT_PORTS.payments),
    ANALYTICS_PORT: port.default(DEFAULT_PORTS.analytics),
    NOTIFICATIONS_PORT: port.default(DEFAULT_PORTS.notifications),
    /**
     * An OpenTelemetry collector (OTLP over HTTP, e.g. http://127.0.0.1:4318): spans are exported
     * there. Without it traces still link services (ids in headers and logs) but stay in-process.
     */
    OTEL_EXPORTER_OTLP_ENDPOINT: optionalUrl,
    /** A real PostgreSQL; without it every service runs on embedded PGlite. */
    DATABASE_URL: optionalUrl,
    /**
     * Prefix of every service's schema (`<prefix><service>`), so several environments (test
     * runs) share one PostgreSQL database without sharing tables.
     */
    DATABASE_SCHEMA_PREFIX: z
      .string()
      .regex(/^[a-z_][a-z0-9_]*$/, 'must be lower-case letters, digits and "_", not starting with a digit')
      .default(''),
    /** Where embedded PGlite keeps its files; `:memory:` keeps nothing on disk. */
    DATA_DIR: z.string().min(1).default('.data'),
    /** Signs the users' JWTs (users service) and verifies them (gateway). */
    JWT_SECRET: optionalSecret,
    /** Signs the short-lived credential the gateway and services send to subgraphs. */
    SERVICE_SECRET: optionalSecret,
    JWT_TTL_SECONDS: z.coerce
      .number()
      .int()
      .positive()
      .default(12 * 60 * 60),
    SERVICE_CREDENTIAL_TTL_SECONDS: z.coerce.number().int().positive().default(60),
    ADMIN_EMAIL: z.email().default('admin@example.com'),
    ADMIN_PASSWORD: z.string().min(1).optional(),
    /** Comma-separated Kafka brokers (host:port); without it events stay in-process (in memory). */
    KAFKA_BROKERS: z
      .string()
      .regex(/^[^,\s]+:\d+(,[^,\s]+:\d+)*$/, 'must be host:port[,host:port...]')
      .optional(),
    /** A RabbitMQ server (amqp://user:pass@host:5672); without it jobs stay in-process (in memory). */
    RABBITMQ_URL: z
      .string()
      .regex(/^amqps?:\/\//, 'must be an amqp:// or amqps:// URL')
      .optional(),
    /** An SMTP server (smtp://user:pass@host:587) for notification emails; without it they are logged. */
    SMTP_URL: z
      .string()
      .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
      .optional(),
    SMTP_FROM: z.string().min(1).default('Event Federation <no-reply@localhost>'),
    /** Pauses before each retry of a failed notification email, in ms; after the last, its DLQ. */
    NOTIFICATION_RETRY_DELAYS_MS: z
      .string()
      .regex(/^\d+(,\d+)*$/, 'must be comma-separated milliseconds, e.g. 1000,2000,4000')
      .default('1000,2000,4000,8000,16000')
      .transform((value) => value.split(',').map(Number)),
    /** Notification emails delivered at once by one worker. */
    NOTIFICATION_PREFETCH: z.coerce.number().int().min(1).max(1_000).default(10),
    /** Prefix of every topic, consumer group, exchange and queue (environments sharing brokers). */
    MESSAGING_NAMESPACE: z
      .string()
      .regex(/^[A-Za-z0-9_-]*$/, 'may contain only letters, digits, "_" and "-"')
      .default(''),
    SUPERGRAPH_PATH: z.string().min(1).default('supergraph.graphql'),
    SUBGRAPH_USERS_URL: optionalUrl,
    SUBGRAPH_PRODUCTS_URL: optionalUrl,
    SUBGRAPH_ORDERS_URL: optionalUrl,
    SUBGRAPH_PAYMENTS_URL: optionalUrl,
    SUBGRAPH_ANALYTICS_URL: optionalUrl,
    SUBGRAPH_NOTIFICATIONS_URL: optionalUrl,
    /**
     * Identical queries (same document, variables and viewer) in flight together share one
     * execution at the gateway; every request is still authenticated, limited and answered alone.
     */
    QUERY_INFLIGHT_DEDUPLICATION: booleanFlag.default(true),
    /** Keep-alive connections the gateway holds open per subgraph. */
    SUBGRAPH_MAX_CONNECTIONS: z.coerce.number().int().positive().default(128),
    /**
     * How often an outbox relay (users, orders) looks for events nothing woke it for: written by
     * another replica, or before a restart. A commit in the relay's own process wakes it at once,
     * so this is only the latency of those, and the idle cost of a query per round (issue #7).
     */
    OUTBOX_POLL_INTERVAL_MS: z.coerce.number().int().min(10).default(1_000),
    /** How long placeOrder waits for the saga to end before returning the order PENDING. */
    ORDER_SAGA_WAIT_MS: z.coerce.number().int().min(0).default(5_000),
    /**
     * How long an orders replica owns a saga it runs without renewing its lease (it renews every
     * third of it). A killed replica's sagas are taken over by another once it lapses.
     */
    ORDER_SAGA_LEASE_MS: z.coerce.number().int().min(100).default(15_000),
    /**
     * How long a saga step before the charge (VALIDATE_USER, RESERVE_STOCK, CHARGE_PAYMENT) keeps
     * retrying a dependency that is down before the order is cancelled, its reason naming the
     * service. Short outages are waited out; the customer is not kept waiting forever. Well below
     * the reservation's lifetime (15 min), so stock held meanwhile is still there to confirm.
     * CONFIRM_ORDER and compensation have no deadline: once paid, an order rolls forward, and
     * money and stock always go back.
     */
    ORDER_SAGA_STEP_DEADLINE_MS: z.coerce.number().int().min(0).default(120_000),
    /** Longest pause between a saga step's attempts after transient failures (the first is 500 ms, doubling). */
    ORDER_SAGA_RETRY_MAX_BACKOFF_MS: z.coerce.number().int().positive().default(30_000),
    /** Per chargePayment call: above payments' worst case (~11 s: three provider calls of 3 s, backoffs). */
    ORDER_SAGA_CHARGE_TIMEOUT_MS: z.coerce.number().int().positive().default(15_000),
    /** How long products holds an order's units before they expire unconfirmed; unset: products' default (15 min). */
    ORDER_RESERVATION_TTL_SECONDS: z.coerce.number().int().positive().max(86_400).optional(),
    /** How long /ready waits for each subgraph before calling it down. */
    READY_TIMEOUT_MS: z.coerce.number().int().positive().default(2_000),
    /** A graphql-ws client must send connection_init within this, or the socket closes (4408). */
    SUBSCRIPTION_CONNECTION_INIT_TIMEOUT_MS: z.coerce.number().int().positive().default(3_000),
    /** Active subscriptions one WebSocket may hold; more are refused with RATE_LIMITED. */
    SUBSCRIPTION_MAX_PER_CONNECTION: z.coerce.number().int().positive().default(25),
    /** Bytes of events waiting for one slow client before it is disconnected (memory stays bounded). */
    SUBSCRIPTION_SEND_BUFFER_BYTES: z.coerce.number().int().positive().default(1_048_576),
    /** Resubscriptions to a subgraph whose socket dropped before clients are told it is unavailable. */
    SUBSCRIPTION_UPSTREAM_RETRY_ATTEMPTS: z.coerce.number().int().min(0).default(8),
    /** First pause before resubscribing to a subgraph; doubles per attempt (with jitter), capped at 10 s. */
    SUBSCRIPTION_UPSTREAM_RETRY_DELAY_MS: z.coerce.number().int().positive().default(250),
    /**
     * Operation limits, checked at the gateway before any subgraph is called (OPERATION_LIMIT).
     * Tighter than Apollo Router's examples: nothing this project's clients send comes near them.
     */
    OPERATION_MAX_DEPTH: z.coerce.number().int().positive().default(20),
    OPERATION_MAX_ALIASES: z.coerce.number().int().min(0).default(30),
    OPERATION_MAX_ROOT_FIELDS: z.coerce.number().int().positive().default(20),
    OPERATION_MAX_TOKENS: z.coerce.number().int().positive().default(15_000),
    /** Largest request body, in bytes; a larger one is answered 413. */
    OPERATION_MAX_BODY_BYTES: z.coerce
      .number()
      .int()
      .positive()
      .default(2 * 1024 * 1024),
    /** Operations in one batched HTTP request (a JSON array). */
    OPERATION_MAX_BATCH: z.coerce.number().int().positive().default(10),
    /** Redis for state the gateway replicas share (rate limits); unset: in memory, one process. */
    REDIS_URL: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    /** Prefix of every Redis key (several environments or test runs on one Redis). */
    REDIS_KEY_PREFIX: z.string().default('event-federation:'),
    /**
     * Token buckets: each operation takes one token from its caller's bucket (the signed-in
     * user's, else the client IP's), refilled continuously; an empty bucket is RATE_LIMITED.
     */
    RATE_LIMIT_CAPACITY: z.coerce.number().int().positive().default(200),
    RATE_LIMIT_REFILL_PER_SECOND: z.coerce.number().positive().default(20),
    /** logIn and signUp (each field, aliases included) also take from a stricter bucket per IP. */
    RATE_LIMIT_AUTH_CAPACITY: z.coerce.number().int().positive().default(10),
    RATE_LIMIT_AUTH_REFILL_PER_SECOND: z.coerce.number().positive().default(0.2),
    /** Proxies in front of the gateway whose X-Forwarded-For is trusted for the client IP. */
    TRUST_PROXY_HOPS: z.coerce.number().int().min(0).default(0),
    /**
     * Longest wait for one subgraph request (the whole reply) before SERVICE_UNAVAILABLE. Above
     * ORDER_SAGA_WAIT_MS: placeOrder legitimately takes that long.
     */
    SUBGRAPH_TIMEOUT_MS: z.coerce.number().int().positive().default(10_000),
    /**
     * Consecutive failures (unreachable, timeout, 5xx) that open a subgraph's circuit, at the
     * gateway and in the orders saga's calls to its siblings.
     */
    SUBGRAPH_BREAKER_THRESHOLD: z.coerce.number().int().positive().default(5),
    /** How long an open circuit fails fast before letting one trial request through. */
    SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS: z.coerce.number().int().positive().default(10_000),
  })
  .superRefine((env, ctx) => {
    if (env.SUBGRAPH_TIMEOUT_MS <= env.ORDER_SAGA_WAIT_MS) {
      ctx.addIssue({
        code: 'custom',
        path: ['SUBGRAPH_TIMEOUT_MS'],
        message: `must be greater than ORDER_SAGA_WAIT_MS (${env.ORDER_SAGA_WAIT_MS}): placeOrder waits that long`,
      });
    }
    if (env.NODE_ENV !== 'production') return;
    for (const name of ['JWT_SECRET', 'SERVICE_SECRET', 'ADMIN_PASSWORD'] as const) {
      if (!env[name]) {
        ctx.addIssue({ code: 'custom', path: [name], message: 'is required when NODE_ENV=production' });
      }
    }
  });

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment; throws ConfigError naming every bad variable at once. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty strings are how shells and compose files say "unset".
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const result = configSchema.safeParse(cleaned);
  if (!result.success) {
    throw new ConfigError(result.error.issues.map((i) => `${i.path.join('.') || '(env)'} ${i.message}`));
  }
  return result.data;
}

export function subgraphPort(config: Config, name: SubgraphName): number {
  const key = `${name.toUpperCase()}_PORT` as `${Uppercase<SubgraphName>}_PORT`;
  return config[key];
}

export function subgraphUrlOverride(config: Config, name: SubgraphName): string | undefined {
  const key = `SUBGRAPH_${name.toUpperCase()}_URL` as `SUBGRAPH_${Uppercase<SubgraphName>}_URL`;
  return config[key];
}

/** For a process's main: a bad configuration prints what is wrong and exits 1, no stack trace. */
export function loadConfigOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}
