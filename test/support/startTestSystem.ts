import pg from 'pg';
import type { DestinationStream } from 'pino';
import { SUBGRAPH_NAMES, type Config, type SubgraphName } from '../../lib/config.ts';
import { createLogger } from '../../lib/logger.ts';
import { createSystem, type System, type SystemOptions } from '../../scripts/createSystem.ts';
import { testConfig, uniqueSchemaPrefix } from './testConfig.ts';

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

export interface TestSystem extends System {
  config: Config;
  /** Sends an operation through the gateway, as a client would. */
  graphql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string,
  ): Promise<GraphQLResponse<T>>;
  /** Counts SQL statements per service while `fn` runs. */
  countQueries(fn: () => Promise<unknown>): Promise<{ service: SubgraphName; sql: string }[]>;
}

export async function postGraphQL<T>(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<GraphQLResponse<T>> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const json = (await response.json()) as Omit<GraphQLResponse<T>, 'status'>;
  return { status: response.status, ...json };
}

/** The whole system on port 0, isolated in its own schemas (real PostgreSQL) or in memory. */
export async function startTestSystem(
  overrides: Record<string, string> = {},
  {
    logDestination,
    ...options
  }: Pick<SystemOptions, 'mailer' | 'paymentProvider' | 'external' | 'schemaPrefix' | 'ordersSiblings'> & {
    logDestination?: DestinationStream;
  } = {},
): Promise<TestSystem> {
  const schemaPrefix = options.schemaPrefix ?? uniqueSchemaPrefix();
  // Each test system gets its own topics, groups and queues on shared brokers, and its own keys
  // on a shared Redis.
  const config = testConfig({
    MESSAGING_NAMESPACE: schemaPrefix,
    REDIS_KEY_PREFIX: `${schemaPrefix}:`,
    ...overrides,
  });
  let recording: { service: SubgraphName; sql: string }[] | null = null;
  const system = await createSystem({
    config,
    logger: createLogger({ level: config.LOG_LEVEL, service: 'test', destination: logDestination }),
    ephemeralPorts: true,
    schemaPrefix,
    ...options,
    onQuery: (service, sql) => recording?.push({ service, sql }),
  });
  return {
    ...system,
    // A getter, so that it follows restartGateway().
    get gateway() {
      return system.gateway;
    },
    config,
    graphql: (query, variables, token) =>
      postGraphQL(system.gatewayUrl, { query, variables }, token ? { authorization: `Bearer ${token}` } : {}),
    async countQueries(fn) {
      recording = [];
      try {
        await fn();
        return recording;
      } finally {
        recording = null;
      }
    },
    async stop() {
      await system.stop();
      if (config.DATABASE_URL) await dropSchemas(config.DATABASE_URL, schemaPrefix);
    },
  };
}

async function dropSchemas(url: string, prefix: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    for (const name of SUBGRAPH_NAMES) await client.query(`DROP SCHEMA IF EXISTS ${prefix}${name} CASCADE`);
  } finally {
    await client.end();
  }
}
