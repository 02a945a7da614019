import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'graphql';
import type { DestinationStream } from 'pino';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createGateway, type Gateway } from '../../gateway/src/server.ts';
import { composeSupergraph } from '../../gateway/src/supergraph/composeSupergraph.ts';
import type { Secrets } from '../../lib/auth/resolveSecrets.ts';
import { createServiceCredentials, createUserTokens, type Viewer } from '../../lib/auth/tokens.ts';
import { forbidden, unauthenticated } from '../../lib/errors.ts';
import { createLogger } from '../../lib/logger.ts';
import {
  createEventSource,
  startTestSubgraph,
  type TestSubgraph,
  type TestSubgraphContext,
} from './startTestSubgraph.ts';
import { testConfig } from './testConfig.ts';

export interface TickEvent {
  n: number;
  channel: string;
  widgetId: string;
  padding?: string;
}

const tickerSdl = `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key", "@inaccessible"])
  type Query { tickerVersion: String! }
  type Subscription {
    "Ticks of a channel, for any signed-in user."
    ticks(channel: String!): Tick!
    "Ticks of a channel, for admins only."
    adminTicks(channel: String!): Tick!
    "A live value: the channel's last tick at once, then each new one."
    latestTick(channel: String!): Tick!
  }
  type Tick {
    n: Int!
    channel: String!
    "The viewer named by the credential the gateway sent with the subscribe message."
    viewerId: ID
    widget: Widget!
    padding: String!
    internalNote: String @inaccessible
  }
  type Widget @key(fields: "id", resolvable: false) { id: ID! }
`;

const catalogSdl = (withColor: boolean) => `
  extend schema @link(url: "https://specs.apollo.dev/federation/v2.7", import: ["@key"])
  type Query { widget(id: ID!): Widget }
  type Widget @key(fields: "id") {
    id: ID!
    name: String!
    "The viewer named by the credential of the entity fetch."
    viewedBy: ID
    ${withColor ? 'color: String!' : ''}
  }
`;

/**
 * Two test subgraphs behind a real gateway on port 0: `ticker` owns Subscription.ticks, whose
 * Tick points at a Widget entity that `catalog` resolves (so every event needs the rest plan).
 */
export async function startSubscriptionTestbed(
  overrides: Record<string, string> = {},
  { logDestination }: { logDestination?: DestinationStream } = {},
) {
  const secrets: Secrets = { jwtSecret: 'j'.repeat(48), serviceSecret: 's'.repeat(48) };
  const credentials = createServiceCredentials({
    secret: secrets.serviceSecret,
    ttlSeconds: 60,
    service: 'test',
  });
  const channels = new Map<string, ReturnType<typeof createEventSource<TickEvent>>>();
  const channel = (name: string) => {
    let source = channels.get(name);
    if (!source) {
      source = createEventSource<TickEvent>();
      channels.set(name, source);
    }
    return source;
  };

  const startTicker = (port = 0) =>
    startTestSubgraph({
      typeDefs: parse(tickerSdl),
      credentials,
      port,
      resolvers: {
        Query: { tickerVersion: () => '1' },
        Subscription: {
          ticks: {
            subscribe: (_: unknown, args: { channel: string }, ctx: TestSubgraphContext) => {
              if (!ctx.viewer) throw unauthenticated();
              return channel(args.channel).iterate();
            },
            resolve: (event: TickEvent) => event,
          },
          latestTick: {
            subscribe: (_: unknown, args: { channel: string }, ctx: TestSubgraphContext) => {
              if (!ctx.viewer) throw unauthenticated();
              return channel(args.channel).latest();
            },
            resolve: (event: TickEvent) => event,
          },
          adminTicks: {
            subscribe: (_: unknown, args: { channel: string }, ctx: TestSubgraphContext) => {
              if (!ctx.viewer) throw unauthenticated();
              if (ctx.viewer.role !== 'ADMIN') throw forbidden('Admins only.');
              return channel(args.channel).iterate();
            },
            resolve: (event: TickEvent) => event,
          },
        },
        Tick: {
          viewerId: (_: TickEvent, _args: unknown, ctx: TestSubgraphContext) => ctx.viewer?.id ?? null,
          widget: (event: TickEvent) => ({ __typename: 'Widget', id: event.widgetId }),
          padding: (event: TickEvent) => event.padding ?? '',
          internalNote: () => 'not for clients',
        },
      } as never,
    });

  let ticker: TestSubgraph = await startTicker();
  const catalog = await startTestSubgraph({
    typeDefs: parse(catalogSdl(true)),
    credentials,
    resolvers: {
      Query: { widget: (_: unknown, { id }: { id: string }) => ({ id }) },
      Widget: {
        __resolveReference: ({ id }: { id: string }) => ({ id }),
        name: ({ id }: { id: string }) => `Widget ${id}`,
        viewedBy: (_: unknown, _args: unknown, ctx: TestSubgraphContext) => ctx.viewer?.id ?? null,
        color: () => 'teal',
      },
    } as never,
  });

  const dir = await mkdtemp(join(tmpdir(), 'subscriptions-'));
  const supergraphPath = join(dir, 'supergraph.graphql');
  const compose = async ({ withColor }: { withColor: boolean }) => {
    await writeFile(join(dir, 'ticker.graphql'), tickerSdl);
    await writeFile(join(dir, 'catalog.graphql'), catalogSdl(withColor));
    await writeFile(
      join(dir, 'supergraph.yaml'),
      [
        'subgraphs:',
        '  ticker:',
        `    routing_url: ${ticker.url}`,
        '    schema: { file: ./ticker.graphql }',
        '  catalog:',
        `    routing_url: ${catalog.url}`,
        '    schema: { file: ./catalog.graphql }',
      ].join('\n'),
    );
    const outcome = await composeSupergraph(join(dir, 'supergraph.yaml'));
    if (!outcome.ok) throw new Error(outcome.errors.join('\n'));
    await writeFile(supergraphPath, outcome.supergraphSdl);
  };
  await compose({ withColor: false });

  const config = testConfig({
    SUPERGRAPH_PATH: supergraphPath,
    JWT_SECRET: secrets.jwtSecret,
    SERVICE_SECRET: secrets.serviceSecret,
    SUBSCRIPTION_UPSTREAM_RETRY_DELAY_MS: '20',
    SUBSCRIPTION_UPSTREAM_RETRY_ATTEMPTS: '3',
    ...overrides,
  });
  const gateway: Gateway = createGateway({
    config,
    logger: createLogger({ level: config.LOG_LEVEL, service: 'gateway', destination: logDestination }),
    secrets,
  });
  const { url } = await gateway.start({ port: 0, host: '127.0.0.1' });
  const wsUrl = url.replace(/^http/, 'ws');

  const tokens = createUserTokens({ secret: secrets.jwtSecret, ttlSeconds: 3600 });
  const clients = new Set<Client>();

  return {
    url,
    wsUrl,
    secrets,
    get ticker() {
      return ticker;
    },
    catalog,
    channel,
    compose,
    /** Starts the ticker again on the port it had (after `ticker.stop()`). */
    async restartTicker() {
      ticker = await startTicker(ticker.port);
    },
    token: (viewer: Viewer, ttlSeconds = 3600) =>
      ttlSeconds === 3600
        ? tokens.issue(viewer)
        : createUserTokens({ secret: secrets.jwtSecret, ttlSeconds }).issue(viewer),
    /** A graphql-ws client of the gateway, as a browser would open one. */
    client(token?: string): Client {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        connectionParams: token ? { authorization: `Bearer ${token}` } : {},
        retryAttempts: 0,
        lazy: true,
      });
      clients.add(client);
      return client;
    },
    gateway,
    async stop() {
      await Promise.all([...clients].map((c) => Promise.resolve(c.dispose())));
      await gateway.stop();
      await ticker.stop();
      await catalog.stop();
    },
  };
}
export type SubscriptionTestbed = Awaited<ReturnType<typeof startSubscriptionTestbed>>;

export interface Collected<T> {
  events: T[];
  errors: unknown[];
  completed: boolean;
  dispose: () => void;
}

/** Subscribes and records what arrives, for `eventually` to watch. */
export function collect<T = Record<string, unknown>>(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
): Collected<{ data?: T | null; errors?: { message: string; extensions?: Record<string, unknown> }[] }> {
  const collected: Collected<{
    data?: T | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  }> = { events: [], errors: [], completed: false, dispose: () => {} };
  collected.dispose = client.subscribe<T>(
    { query, variables },
    {
      next: (event) => collected.events.push(event as never),
      error: (error) => collected.errors.push(error),
      complete: () => {
        collected.completed = true;
      },
    },
  );
  return collected;
}
