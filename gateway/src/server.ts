import { createServer } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';
import cors from 'cors';
import express from 'express';
import type { Secrets } from '../../lib/auth/resolveSecrets.ts';
import { createServiceCredentials, createUserTokens } from '../../lib/auth/tokens.ts';
import { SUBGRAPH_NAMES, subgraphUrlOverride, type Config } from '../../lib/config.ts';
import { createFormatError } from '../../lib/http/formatError.ts';
import { listen, urlFor } from '../../lib/http/listen.ts';
import { createDisposableStack } from '../../lib/lifecycle.ts';
import type { Logger } from '../../lib/logger.ts';
import { createRequestMetricsPlugin } from '../../lib/observability/createMetrics.ts';
import { createObservability, type Observability } from '../../lib/observability/createObservability.ts';
import { createRequestLogPlugin } from '../../lib/observability/createRequestLogPlugin.ts';
import { createOperationSpanPlugin } from '../../lib/observability/createOperationSpanPlugin.ts';
import { traceRequests } from '../../lib/observability/traceRequests.ts';
import { createGatewayContextFactory, type GatewayContext } from './auth/createGatewayContext.ts';
import { createResultStringifier } from './execution/createResultStringifier.ts';
import { withInflightDeduplication } from './execution/dedupeInflightQueries.ts';
import { joinInflightRequests } from './execution/joinInflightRequests.ts';
import { serveGraphQL } from './execution/serveGraphQL.ts';
import { serveDashboard } from './dashboard/serveDashboard.ts';
import { createStatusRoutes } from './health/createStatusRoutes.ts';
import { createRequestLimits } from './plugins/requestLimits.ts';
import { useOperationGuards } from './plugins/useOperationGuards.ts';
import { operationLimitsGuard } from './plugins/useOperationLimits.ts';
import { createBucketTaker, operationTokenTaker, rateLimitsGuard } from './plugins/useRateLimits.ts';
import { createTokenBuckets } from './rateLimits/createTokenBuckets.ts';
import { createSubgraphBreakers } from './subgraphs/createSubgraphBreakers.ts';
import {
  createSubgraphHttpClient,
  resilientFetcher,
  SubgraphDataSource,
} from './subgraphs/createSubgraphDataSource.ts';
import { attachSubscriptions } from './subscriptions/attachSubscriptions.ts';
import { createSupergraphManager, type SubgraphEndpoint } from './supergraph/createSupergraphManager.ts';

export interface GatewayDeps {
  config: Config;
  logger: Logger;
  secrets: Secrets;
  /** Routing URLs that win over the supergraph's (tests on port 0; SUBGRAPH_<NAME>_URL). */
  subgraphUrls?: Partial<Record<string, string>>;
  /** Metrics and tracer (by default its own, named `gateway`). */
  observability?: Observability;
}

export interface Gateway {
  readonly url: string | undefined;
  start(options: { port: number; host: string }): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
}

/** The federation gateway: built here, started by `start` (main.ts or a test on port 0). */
export function createGateway({
  config,
  logger,
  secrets,
  subgraphUrls = {},
  observability = createObservability({ service: 'gateway', config }),
}: GatewayDeps): Gateway {
  const production = config.NODE_ENV === 'production';
  const overrides: Partial<Record<string, string>> = { ...subgraphUrls };
  for (const name of SUBGRAPH_NAMES) overrides[name] ??= subgraphUrlOverride(config, name);
  const routed = (endpoint: SubgraphEndpoint) => ({
    ...endpoint,
    url: overrides[endpoint.name] ?? endpoint.url,
  });

  const resources = createDisposableStack();
  resources.defer(() => observability.shutdown());
  const http = createSubgraphHttpClient({ maxConnectionsPerOrigin: config.SUBGRAPH_MAX_CONNECTIONS });
  resources.defer(() => http.close());
  const supergraph = createSupergraphManager({ path: config.SUPERGRAPH_PATH, logger });
  const breakers = createSubgraphBreakers({
    threshold: config.SUBGRAPH_BREAKER_THRESHOLD,
    halfOpenAfterMs: config.SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS,
    logger,
    metrics: observability.metrics,
  });
  const buckets = createTokenBuckets(config, logger);
  const takeTokens = createBucketTaker(buckets, logger);
  const operationBucket = {
    capacity: config.RATE_LIMIT_CAPACITY,
    refillPerSecond: config.RATE_LIMIT_REFILL_PER_SECOND,
  };
  resources.defer(() => buckets.close());

  // @apollo/gateway reads this only from process.env: unless told otherwise it sends anonymous
  // usage metrics to Apollo and probes cloud metadata servers at start. Nothing leaves the
  // machine unless an operator opts in with APOLLO_TELEMETRY_DISABLED=false.
  process.env['APOLLO_TELEMETRY_DISABLED'] ??= 'true';
  /** How the gateway calls a subgraph, for queries and for subscription events alike. */
  const subgraphDataSource = ({ name, url }: { name: string; url?: string }) =>
    new SubgraphDataSource({
      name,
      url,
      fetcher: resilientFetcher({
        fetcher: http.fetcher,
        breaker: breakers.get(name),
        timeoutMs: config.SUBGRAPH_TIMEOUT_MS,
      }),
      tracer: observability.tracing.tracer,
      metrics: observability.metrics,
    });
  const gateway = new ApolloGateway({
    supergraphSdl: supergraph.hook,
    logger,
    buildService: ({ name, url }) => subgraphDataSource({ name, url: overrides[name] ?? url }),
  });

  const app = express();
  app.disable('x-powered-by');
  if (config.TRUST_PROXY_HOPS > 0) app.set('trust proxy', config.TRUST_PROXY_HOPS);
  const httpServer = createServer(app);
  // Subscriptions over WebSocket and SSE at the same URL: the subscription bridge (./subscriptions).
  const subscriptions = attachSubscriptions({
    httpServer,
    app,
    gateway,
    config,
    logger,
    secrets,
    routed,
    createDataSource: subgraphDataSource,
    metrics: observability.metrics,
    tracer: observability.tracing.tracer,
    rateLimit: operationTokenTaker(takeTokens, operationBucket, 'subscriptions'),
  });
  resources.defer(() => subscriptions.stop());
  // Identical queries in flight: answered together before Apollo Server's pipeline, and (those
  // that still reach it together) sharing one execution of the plan.
  const inflight = config.QUERY_INFLIGHT_DEDUPLICATION
    ? joinInflightRequests({
        metrics: observability.metrics,
        logger,
        takeOperationToken: operationTokenTaker(takeTokens, operationBucket),
      })
    : undefined;
  const apollo = new ApolloServer<GatewayContext>({
    gateway: config.QUERY_INFLIGHT_DEDUPLICATION
      ? withInflightDeduplication(gateway, observability.metrics)
      : gateway,
    // Requests that shared an execution share its serialised data too.
    stringifyResult: createResultStringifier(),
    introspection: !production,
    includeStacktraceInErrorResponses: !production,
    // No "Did you mean …?" in production: validation errors must not map the schema out.
    hideSchemaDetailsFromClientErrors: production,
    // Batches are capped (OPERATION_MAX_BATCH) and each operation is limited and counted alone.
    allowBatchedHttpRequests: true,
    formatError: createFormatError({ logger, production }),
    logger,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      subscriptions.plugin,
      ...(inflight ? [inflight.plugin] : []),
      createRequestMetricsPlugin(observability.metrics),
      createOperationSpanPlugin(),
      createRequestLogPlugin(logger, 'info'),
      production
        ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
        : ApolloServerPluginLandingPageLocalDefault({ footer: false, includeCookies: false }),
      // In this order, one after the other: an operation over a limit spends no rate-limit token.
      useOperationGuards(
        operationLimitsGuard({
          maxDepth: config.OPERATION_MAX_DEPTH,
          maxAliases: config.OPERATION_MAX_ALIASES,
          maxRootFields: config.OPERATION_MAX_ROOT_FIELDS,
        }),
        rateLimitsGuard({
          buckets,
          operations: operationBucket,
          auth: {
            capacity: config.RATE_LIMIT_AUTH_CAPACITY,
            refillPerSecond: config.RATE_LIMIT_AUTH_REFILL_PER_SECOND,
          },
          logger,
        }),
      ),
    ],
  });
  const createContext = createGatewayContextFactory({
    userTokens: createUserTokens({ secret: secrets.jwtSecret, ttlSeconds: config.JWT_TTL_SECONDS }),
    credentials: createServiceCredentials({
      secret: secrets.serviceSecret,
      ttlSeconds: config.SERVICE_CREDENTIAL_TTL_SECONDS,
      service: 'gateway',
    }),
  });

  let started = false;
  let url: string | undefined;

  app.get('/metrics', observability.metrics.handler);
  app.use(serveDashboard({ logger, production }));
  const status = createStatusRoutes({
    isStarted: () => started,
    endpoints: () => supergraph.endpoints().map(routed),
    fetcher: http.fetcher,
    timeoutMs: config.READY_TIMEOUT_MS,
    breakers,
    dependencies: buckets.checks,
  });
  resources.defer(() => status.close());
  app.use(status.router);

  return {
    get url() {
      return url;
    },
    async start({ port, host }) {
      if (started) throw new Error('gateway already started');
      await buckets.connect(); // never fails: an unreachable Redis means in-memory buckets for now
      await apollo.start();
      // apollo.stop() also drains the HTTP server, which must then be listening.
      resources.defer(() => (httpServer.listening ? apollo.stop() : gateway.stop()));
      // Sandbox is served at / as well as /graphql, and it sends its operations to the page's URL.
      const requestLimits = createRequestLimits(
        {
          maxBodyBytes: config.OPERATION_MAX_BODY_BYTES,
          maxBatch: config.OPERATION_MAX_BATCH,
          maxTokens: config.OPERATION_MAX_TOKENS,
        },
        { logger, metrics: observability.metrics, production },
      );
      app.all(
        ['/', '/graphql'],
        cors(),
        // Tracing first: requests the limits refuse get a request id, a span and a log line too.
        traceRequests(observability.tracing.tracer),
        ...requestLimits.handlers,
        serveGraphQL(apollo, { context: ({ req }) => createContext(req.headers, req.ip), inflight }),
        requestLimits.errors,
      );
      const boundPort = await listen(httpServer, port, host);
      url = urlFor(host, boundPort, '/graphql');
      started = true;
      logger.info({ url, subgraphs: supergraph.endpoints().map(routed) }, 'gateway ready');
      return { url, port: boundPort };
    },
    async stop() {
      started = false;
      await resources.dispose();
    },
  };
}
