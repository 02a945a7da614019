import { createServer } from 'node:http';
import { ApolloGateway } from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginLandingPageLocalDefault,
  ApolloServerPluginLandingPageProductionDefault,
} from '@apollo/server/plugin/landingPage/default';
import { expressMiddleware } from '@as-integrations/express5';
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
import { serveDashboard } from './dashboard/serveDashboard.ts';
import { checkSubgraphs } from './health/checkSubgraphs.ts';
import { createSubgraphHttpClient, SubgraphDataSource } from './subgraphs/createSubgraphDataSource.ts';
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

  // @apollo/gateway reads this only from process.env: unless told otherwise it sends anonymous
  // usage metrics to Apollo and probes cloud metadata servers at start. Nothing leaves the
  // machine unless an operator opts in with APOLLO_TELEMETRY_DISABLED=false.
  process.env['APOLLO_TELEMETRY_DISABLED'] ??= 'true';
  const gateway = new ApolloGateway({
    supergraphSdl: supergraph.hook,
    logger,
    buildService: ({ name, url }) =>
      new SubgraphDataSource({
        name,
        url: overrides[name] ?? url,
        fetcher: http.fetcher,
        tracer: observability.tracing.tracer,
        metrics: observability.metrics,
      }),
  });

  const app = express();
  app.disable('x-powered-by');
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
    http,
    metrics: observability.metrics,
  });
  resources.defer(() => subscriptions.stop());
  const apollo = new ApolloServer<GatewayContext>({
    gateway,
    introspection: !production,
    includeStacktraceInErrorResponses: !production,
    formatError: createFormatError({ logger, production }),
    logger,
    plugins: [
      ApolloServerPluginDrainHttpServer({ httpServer }),
      subscriptions.plugin,
      createRequestMetricsPlugin(observability.metrics),
      createOperationSpanPlugin(),
      createRequestLogPlugin(logger, 'info'),
      production
        ? ApolloServerPluginLandingPageProductionDefault({ footer: false })
        : ApolloServerPluginLandingPageLocalDefault({ footer: false, includeCookies: false }),
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

  app.get('/health', (_req, res) => {
    res.json({ status: 'ok', service: 'gateway', uptimeSeconds: Math.round(process.uptime()) });
  });
  app.get('/metrics', observability.metrics.handler);
  app.use(serveDashboard({ logger, production }));
  app.get('/ready', async (_req, res) => {
    const subgraphs = started
      ? await checkSubgraphs(supergraph.endpoints().map(routed), {
          fetcher: http.fetcher,
          timeoutMs: config.READY_TIMEOUT_MS,
        })
      : [];
    const ready = started && subgraphs.length > 0 && subgraphs.every((s) => s.ready);
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'unavailable', subgraphs });
  });

  return {
    get url() {
      return url;
    },
    async start({ port, host }) {
      if (started) throw new Error('gateway already started');
      await apollo.start();
      // apollo.stop() also drains the HTTP server, which must then be listening.
      resources.defer(() => (httpServer.listening ? apollo.stop() : gateway.stop()));
      // Sandbox is served at / as well as /graphql, and it sends its operations to the page's URL.
      app.all(
        ['/', '/graphql'],
        cors(),
        express.json({ limit: '2mb' }),
        traceRequests(observability.tracing.tracer),
        expressMiddleware(apollo, { context: ({ req }) => createContext(req.headers) }),
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
