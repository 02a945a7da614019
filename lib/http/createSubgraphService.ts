import { createServer, type Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLSchemaModule } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import type { DocumentNode } from 'graphql';
import {
  InvalidTokenError,
  SERVICE_CREDENTIAL_HEADER,
  type ServiceCaller,
  type ServiceCredentials,
} from '../auth/tokens.ts';
import type { Database } from '../db/createDatabase.ts';
import { migrate, type MigrationSource } from '../db/migrate.ts';
import { unauthenticated } from '../errors.ts';
import type { Logger } from '../logger.ts';
import { createRequestMetricsPlugin } from '../observability/createMetrics.ts';
import type { Observability } from '../observability/createObservability.ts';
import { createRequestLogPlugin } from '../observability/createRequestLogPlugin.ts';
import { createOperationSpanPlugin } from '../observability/createOperationSpanPlugin.ts';
import { traceRequests } from '../observability/traceRequests.ts';
import { createFormatError } from './formatError.ts';
import { createSubgraphWebSocket } from './createSubgraphWebSocket.ts';
import { createHealthRoutes } from './createHealthRoutes.ts';
import { listen, urlFor } from './listen.ts';

/** A process-level unit with an explicit lifecycle: built apart, started, stopped once. */
export interface Service {
  readonly name: string;
  /** The GraphQL endpoint, once started. */
  readonly url: string | undefined;
  start(options: { port: number; host: string }): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
}

export interface SubgraphServiceOptions<TContext> {
  name: string;
  typeDefs: DocumentNode;
  /** Resolvers take the context built by `createContext`. */
  resolvers: GraphQLSchemaModule['resolvers'];
  db: Database;
  migrationsDir: string;
  /** Shared platform tables the service also owns (the outbox), each with its own versions. */
  extraMigrations?: MigrationSource[];
  credentials: ServiceCredentials;
  logger: Logger;
  /** Its metrics (`GET /metrics`) and tracer (a span per request, child of the caller's). */
  observability: Observability;
  production: boolean;
  /** Bootstrap or demo data for an empty database, run after migrations (it checks NODE_ENV itself). */
  seed?: () => Promise<void>;
  /** Per-request context (request-scoped DataLoaders live here). */
  createContext: (caller: ServiceCaller) => TContext;
  /** Called once migrations and seeds are done, before the port opens (background workers). */
  onStart?: () => Promise<void> | void;
  /** Called on stop, before the database closes (background workers). */
  onStop?: () => Promise<void>;
  /** Dependencies besides the database that /ready checks, by name (the brokers it uses). */
  readiness?: Record<string, () => Promise<unknown>>;
}

/**
 * The shape every subgraph shares: `/graphql` for the gateway and sibling services (signed
 * service credential required) over HTTP and over WebSocket (graphql-ws, for subscriptions),
 * `/health` for liveness and `/ready` for its database and brokers.
 */
export function createSubgraphService<TContext extends object>(
  options: SubgraphServiceOptions<TContext>,
): Service {
  const { name, db, logger, credentials } = options;
  const app = express();
  app.disable('x-powered-by');
  const httpServer: Server = createServer(app);
  const schema = buildSubgraphSchema({ typeDefs: options.typeDefs, resolvers: options.resolvers });
  const formatError = createFormatError({ logger, production: options.production });
  const apollo = new ApolloServer<TContext>({
    schema,
    // Inline (ftv1) traces are for Apollo Studio, which this project does not report to.
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      ApolloServerPluginInlineTraceDisabled(),
      createRequestMetricsPlugin(options.observability.metrics),
      createOperationSpanPlugin(),
      createRequestLogPlugin(logger, 'debug'),
    ],
    includeStacktraceInErrorResponses: !options.production,
    formatError,
    logger,
  });
  const webSocket = createSubgraphWebSocket({
    httpServer,
    path: '/graphql',
    schema,
    credentials,
    createContext: options.createContext,
    formatError,
    production: options.production,
    metrics: options.observability.metrics,
  });
  let url: string | undefined;
  let state: 'built' | 'starting' | 'started' | 'stopping' | 'stopped' = 'built';
  let apolloStarted = false;
  let stopping: Promise<void> | undefined;

  app.get('/metrics', options.observability.metrics.handler);
  const health = createHealthRoutes({
    service: name,
    isStarted: () => state === 'started',
    checks: { database: () => db.ping(), ...options.readiness },
  });
  app.use(health.router);

  return {
    name,
    get url() {
      return url;
    },
    async start({ port, host }) {
      if (state !== 'built') throw new Error(`${name} service was already started`);
      state = 'starting';
      await migrate(
        db,
        [{ component: name, dir: options.migrationsDir }, ...(options.extraMigrations ?? [])],
        logger,
      );
      await options.seed?.();
      await options.onStart?.();
      await apollo.start();
      apolloStarted = true;
      app.use(
        '/graphql',
        express.json({ limit: '2mb' }),
        traceRequests(options.observability.tracing.tracer),
        expressMiddleware(apollo, {
          context: async ({ req }) => {
            const credential = req.headers[SERVICE_CREDENTIAL_HEADER];
            if (typeof credential !== 'string' || credential === '') {
              throw unauthenticated(`${name} accepts only calls signed by the gateway or a sibling service`);
            }
            try {
              return options.createContext(await credentials.verify(credential));
            } catch (error) {
              if (error instanceof InvalidTokenError)
                throw unauthenticated(`service credential: ${error.message}`);
              throw error;
            }
          },
        }),
      );
      const boundPort = await listen(httpServer, port, host);
      url = urlFor(host, boundPort, '/graphql');
      state = 'started';
      logger.info({ url }, `${name} subgraph ready`);
      return { url, port: boundPort };
    },
    stop() {
      stopping ??= (async () => {
        state = 'stopping';
        // Subscriptions first (close 1001, going away): the gateway resubscribes elsewhere.
        await webSocket.close();
        // Drains in-flight requests (ApolloServerPluginDrainHttpServer closes the HTTP server),
        // then lets go of the pool.
        if (apolloStarted && httpServer.listening) await apollo.stop();
        else if (httpServer.listening) await new Promise((resolve) => httpServer.close(resolve));
        health.close();
        await options.onStop?.();
        await db.close();
        state = 'stopped';
      })();
      return stopping;
    },
  };
}
