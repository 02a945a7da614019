import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ApolloGateway } from '@apollo/gateway';
import type { ApolloServerPlugin } from '@apollo/server';
import type { Tracer } from '@opentelemetry/api';
import express, { type Express, type Request as ExpressRequest } from 'express';
import { getOperationAST, GraphQLError, type ExecutionResult } from 'graphql';
import { createHandler as createSseHandler, type Response as SseResponse } from 'graphql-sse';
import { CloseCode, type Context as WsContext } from 'graphql-ws';
import { useServer, type Extra } from 'graphql-ws/use/ws';
import { WebSocket, WebSocketServer } from 'ws';
import type { Secrets } from '../../../lib/auth/resolveSecrets.ts';
import {
  createServiceCredentials,
  createUserTokens,
  InvalidTokenError,
  type Viewer,
} from '../../../lib/auth/tokens.ts';
import type { Config } from '../../../lib/config.ts';
import { appError, ErrorCode } from '../../../lib/errors.ts';
import { createFormatError } from '../../../lib/http/formatError.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { Metrics } from '../../../lib/observability/createMetrics.ts';
import { REQUEST_ID_HEADER } from '../../../lib/observability/requestId.ts';
import type { SubgraphDataSource } from '../subgraphs/createSubgraphDataSource.ts';
import type { SubgraphEndpoint } from '../supergraph/createSupergraphManager.ts';
import { createNextMessages, formattedResult } from './createNextMessages.ts';
import { createSharedSubscriptions } from './createSharedSubscriptions.ts';
import { createSubgraphSockets } from './createSubgraphSockets.ts';
import { createSubscriptionBridge } from './createSubscriptionBridge.ts';
import { createSubscriptionPlanner } from './createSubscriptionPlanner.ts';
import { createWriteCoalescer } from './createWriteCoalescer.ts';
import { observeSubscriptions, type ObservedSubscription } from './observeSubscriptions.ts';

const PATHS = new Set(['/', '/graphql']);
const MAX_MESSAGE_BYTES = 2 * 1024 * 1024;
/** A client too slow to read its events (its send buffer is full). */
const SLOW_CONSUMER_CLOSE_CODE = 1008;

interface Identity {
  viewer: Viewer | null;
  expiresAt: number | undefined;
}

interface SubscriptionContext {
  identity: Identity;
  socket: WebSocket;
  observed: ObservedSubscription;
  /** The client's id for this subscription, and its connection (graphql-ws's context). */
  id: string;
  connection: WsContext<Record<string, unknown> | undefined, Extra & Partial<Record<PropertyKey, never>>>;
}

/**
 * Serves subscriptions at the gateway's GraphQL URL: GraphQL over WebSocket (graphql-ws,
 * subprotocol graphql-transport-ws) on upgrade, and GraphQL over Server-Sent Events
 * (graphql-sse, distinct connections) for requests that accept text/event-stream. Both run
 * through the subscription bridge (createSubscriptionBridge.ts).
 *
 * Returns an Apollo Server plugin that closes WebSockets (1001) and event streams when the
 * server drains, and `stop` for a gateway that never started. Both are idempotent.
 */
export function attachSubscriptions({
  httpServer,
  app,
  gateway,
  config,
  logger,
  secrets,
  routed,
  createDataSource,
  metrics,
  tracer,
  rateLimit,
}: {
  httpServer: Server;
  app: Express;
  gateway: ApolloGateway;
  config: Config;
  logger: Logger;
  secrets: Secrets;
  /** Applies the gateway's routing overrides (tests on port 0, SUBGRAPH_<NAME>_URL). */
  routed: (endpoint: SubgraphEndpoint) => SubgraphEndpoint;
  /** How the gateway calls a subgraph (pool, timeout, breaker): the entity fetches of each event. */
  createDataSource: (endpoint: { name: string; url?: string }) => SubgraphDataSource;
  /** WebSocket connections, client and upstream subscriptions, read at scrape time. */
  metrics?: Metrics;
  /** The gateway's tracer: a span per subscription, in the same traces as HTTP operations. */
  tracer: Tracer;
  /**
   * Counts a new subscription against the caller's rate limit, as an HTTP operation is counted;
   * rejects (RATE_LIMITED) when the caller is over it.
   */
  rateLimit?: (caller: { viewer: Viewer | null; clientIp: string }) => Promise<void>;
}) {
  const production = config.NODE_ENV === 'production';
  const userTokens = createUserTokens({ secret: secrets.jwtSecret, ttlSeconds: config.JWT_TTL_SECONDS });
  const credentials = createServiceCredentials({
    secret: secrets.serviceSecret,
    ttlSeconds: config.SERVICE_CREDENTIAL_TTL_SECONDS,
    service: 'gateway',
  });
  const planner = createSubscriptionPlanner({
    gateway,
    route: routed,
    createDataSource,
  });
  const sockets = createSubgraphSockets({
    credentials,
    logger,
    retryAttempts: config.SUBSCRIPTION_UPSTREAM_RETRY_ATTEMPTS,
    retryDelayMs: config.SUBSCRIPTION_UPSTREAM_RETRY_DELAY_MS,
  });
  // Errors leave as over HTTP (server.ts): each with its code, nothing internal in production.
  const formatError = createFormatError({ logger, production });
  const formatErrors = (errors: readonly GraphQLError[]) =>
    errors.map((error) => formatError(error.toJSON(), error));
  const coalescer = createWriteCoalescer();
  const fanOutSeconds = metrics?.histogram({
    name: 'gateway_subscription_fanout_seconds',
    help: "From an upstream subscription event's arrival to the last of its subscribers' messages handed to the kernel (WebSocket) or queued for its transport; while events overlap, until the writes queued before its end are out too (an upper bound)",
    labelNames: ['subgraph'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5],
  });
  const shared = createSharedSubscriptions({
    sockets,
    credentials,
    logger,
    encode: (result) => JSON.stringify(formattedResult(result, formatErrors)),
    onFannedOut:
      fanOutSeconds &&
      ((subgraph, receivedAt) =>
        coalescer.afterRelease(() =>
          fanOutSeconds.observe({ subgraph }, (performance.now() - receivedAt) / 1000),
        )),
  });
  const bridge = createSubscriptionBridge({
    planner,
    shared,
    maxBufferedBytes: config.SUBSCRIPTION_SEND_BUFFER_BYTES,
    limits: {
      maxDepth: config.OPERATION_MAX_DEPTH,
      maxAliases: config.OPERATION_MAX_ALIASES,
      maxRootFields: config.OPERATION_MAX_ROOT_FIELDS,
      maxTokens: config.OPERATION_MAX_TOKENS,
    },
    hideSchemaDetails: production,
    logger,
  });
  const observer = observeSubscriptions({ logger, tracer });

  /** undefined: no credentials (anonymous); throws InvalidTokenError for a bad or expired token. */
  const authenticate = async (authorization: unknown): Promise<Identity> => {
    if (authorization === undefined || authorization === null || authorization === '') {
      return { viewer: null, expiresAt: undefined };
    }
    const match = typeof authorization === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(authorization) : null;
    if (!match?.[1]) throw new InvalidTokenError('authorization must be "Bearer <token>"');
    const { id, role, expiresAt } = await userTokens.verify(match[1]);
    return { viewer: { id, role }, expiresAt };
  };

  /** The caller's rate limit for one more subscription: the RATE_LIMITED error, if over it. */
  async function checkRate(
    viewer: Viewer | null,
    address: string | undefined,
  ): Promise<GraphQLError | undefined> {
    try {
      await rateLimit?.({ viewer, clientIp: address ?? 'unknown' });
      return undefined;
    } catch (error) {
      if (error instanceof GraphQLError) return error;
      throw error;
    }
  }

  // --- GraphQL over WebSocket ---------------------------------------------------------------
  // No permessage-deflate (ws's default, stated because `send` below relies on it): at thousands
  // of clients, compressing each event per client would cost more than the bytes it saves.
  const wsServer = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_MESSAGE_BYTES,
    perMessageDeflate: false,
  });
  const nextMessages = createNextMessages();
  const identities = new WeakMap<object, Identity & { expiry?: NodeJS.Timeout }>();
  /** Each connection's subscriptions being observed, by operation id, until they end. */
  const observations = new WeakMap<object, Map<string, ObservedSubscription>>();
  const observationsOf = (ctx: object) => {
    let byId = observations.get(ctx);
    if (!byId) observations.set(ctx, (byId = new Map<string, ObservedSubscription>()));
    return byId;
  };
  const endObservation = (ctx: object, id: string) => {
    observations.get(ctx)?.get(id)?.end();
    observations.get(ctx)?.delete(id);
  };
  metrics?.gauge({
    name: 'gateway_websocket_connections',
    help: 'Open GraphQL-over-WebSocket client connections',
    collect() {
      this.set(wsServer.clients.size);
    },
  });
  metrics?.gauge({
    name: 'gateway_subscriptions',
    help: 'Subscriptions served to clients (WebSocket and SSE)',
    collect() {
      this.set(shared.subscriberCount);
    },
  });
  metrics?.gauge({
    name: 'gateway_upstream_subscriptions',
    help: 'Subscriptions open to subgraphs; identical client subscriptions share one',
    collect() {
      this.set(shared.upstreamCount);
    },
  });
  const wsCleanup = useServer<Record<string, unknown> | undefined>(
    {
      connectionInitWaitTimeout: config.SUBSCRIPTION_CONNECTION_INIT_TIMEOUT_MS,
      onConnect: async (ctx) => {
        const params = ctx.connectionParams ?? {};
        let identity: Identity;
        try {
          identity = await authenticate(params['authorization'] ?? params['Authorization']);
        } catch (error) {
          if (error instanceof InvalidTokenError) {
            ctx.extra.socket.close(CloseCode.Forbidden, error.expired ? 'Token expired' : 'Invalid token');
            return false;
          }
          throw error;
        }
        const entry: Identity & { expiry?: NodeJS.Timeout } = { ...identity };
        if (identity.expiresAt !== undefined) {
          // The connection's identity ends with its token: the client reconnects with a new one.
          entry.expiry = setTimeout(
            () => ctx.extra.socket.close(CloseCode.Forbidden, 'Token expired'),
            Math.min(2 ** 31 - 1, Math.max(0, identity.expiresAt - Date.now())),
          );
        }
        identities.set(ctx, entry);
        return true;
      },
      onClose: (ctx) => {
        clearTimeout(identities.get(ctx)?.expiry);
        // Those still being set up when the socket went (the rest ended through onComplete).
        for (const observed of observations.get(ctx)?.values() ?? []) observed.end();
        observations.delete(ctx);
      },
      onError: (ctx, id, _payload, errors) => {
        observationsOf(ctx).get(id)?.failed(errors);
        endObservation(ctx, id);
        return formatErrors(errors);
      },
      // Only results that waited for a client with a backlog, and final ones, come this way;
      // the others are written by `send` below.
      onNext: (ctx, id, _payload, _args, result) => {
        if (!result.errors) return undefined;
        observationsOf(ctx).get(id)?.failed(result.errors);
        return formattedResult(result, formatErrors);
      },
      onComplete: (ctx, id) => endObservation(ctx, id),
      onSubscribe: async (ctx, id, payload) => {
        const observed = observer.start({
          transport: 'websocket',
          headers: ctx.extra.request.headers,
          requestId: payload.extensions?.[REQUEST_ID_HEADER],
        });
        observed.name(payload.operationName);
        observationsOf(ctx).set(id, observed);
        try {
          // Synchronous up to its first await, as the per-connection check below needs.
          return await observed.run(() => prepareSubscription(ctx, id, payload, observed));
        } catch (error) {
          endObservation(ctx, id);
          throw error;
        }
      },
      subscribe: (args) => {
        const { identity, socket, observed, id, connection } = args.contextValue as SubscriptionContext;
        const nextMessage = nextMessages(id);
        // The client's TCP socket beneath `ws` (the upgraded request's): what the coalescer holds.
        const tcp = connection.extra.request.socket;
        return observed.run(() => {
          const result = bridge.subscribe({
            document: args.document,
            operationName: args.operationName ?? undefined,
            variables: args.variableValues ?? {},
            viewer: identity.viewer,
            // Bytes the coalescer holds are on their way, in order, not a backlog: a client
            // with only those is still written at once, so its next events join the same write.
            transportBytes: () => (coalescer.holds(tcp) ? 0 : socket.bufferedAmount),
            onOverflow: () => {
              logger.warn({ viewer: identity.viewer?.id }, 'subscriber too slow: disconnecting');
              socket.close(SLOW_CONSUMER_CLOSE_CODE, 'Send buffer full: reading too slowly');
            },
            // graphql-ws would await a promise per result, re-serialise it and send it as a
            // string (issue #7): a client with nothing waiting is sent the `next` message
            // graphql-ws would send, made from the event's shared serialisation, at once.
            // graphql-ws still handles everything else: its own messages, complete, errors,
            // and the results of a client with a backlog, in order behind what went this way.
            send: (event) => {
              // As graphql-ws: nothing for a subscription the client has completed, nor to a
              // socket that is closing.
              if (!(id in connection.subscriptions) || socket.readyState !== WebSocket.OPEN) return;
              if (event.result.errors) observed.failed(event.result.errors);
              // Framed here and written beneath `ws`, held with the client's other writes
              // (createWriteCoalescer.ts): the event's bytes are shared, not copied per client.
              // `ws` writes each frame of its own whole and at once (no permessage-deflate, so
              // it never queues one), so this frame cannot land inside one of its frames.
              const [head, eventBytes] = nextMessage.frame(event); // head: frame header and id
              coalescer.hold(tcp);
              tcp.write(head);
              tcp.write(eventBytes);
            },
          });
          if (Symbol.asyncIterator in result) observed.started();
          return result;
        });
      },
    },
    wsServer,
  );

  async function prepareSubscription(
    ctx: SubscriptionContext['connection'],
    id: string,
    payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
    observed: ObservedSubscription,
  ) {
    const identity = identities.get(ctx) ?? { viewer: null, expiresAt: undefined };
    // The new subscription already counts among ctx.subscriptions. Checked before the first
    // await: subscribe messages arriving together must not all be counted before any check.
    if (Object.keys(ctx.subscriptions).length > config.SUBSCRIPTION_MAX_PER_CONNECTION) {
      return [
        appError(
          ErrorCode.RATE_LIMITED,
          `Too many subscriptions on one connection (at most ${config.SUBSCRIPTION_MAX_PER_CONNECTION}).`,
        ),
      ];
    }
    const limited = await checkRate(identity.viewer, ctx.extra.request.socket.remoteAddress);
    if (limited) return [limited];
    const prepared = bridge.prepare(payload);
    if (Array.isArray(prepared)) return prepared;
    observed.name(getOperationAST(prepared.document, prepared.operationName)?.name?.value);
    const schema = planner.schema();
    if (!schema) return [appError(ErrorCode.SERVICE_UNAVAILABLE, 'The gateway is starting.')];
    const contextValue: SubscriptionContext = {
      identity,
      socket: ctx.extra.socket,
      observed,
      id,
      connection: ctx,
    };
    return {
      schema,
      document: prepared.document,
      operationName: prepared.operationName ?? null,
      variableValues: prepared.variables,
      contextValue,
    };
  }
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const { pathname } = new URL(request.url ?? '/', 'http://gateway');
    if (!PATHS.has(pathname)) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wsServer.handleUpgrade(request, socket, head, (ws) => wsServer.emit('connection', ws, request));
  };
  httpServer.on('upgrade', onUpgrade);

  // --- GraphQL over Server-Sent Events ------------------------------------------------------
  const openStreams = new Set<ServerResponse>();
  const jsonError = (status: number, statusText: string, error: GraphQLError): SseResponse => [
    JSON.stringify({ errors: [error.toJSON()] }),
    { status, statusText, headers: { 'content-type': 'application/json; charset=utf-8' } },
  ];
  const sse = createSseHandler<
    ExpressRequest,
    { res: ServerResponse; observed: ObservedSubscription; identity?: Identity }
  >({
    // Distinct connections mode only: one event stream per operation, no stream reservations.
    authenticate: async (req) => {
      try {
        req.context.identity = await authenticate(req.headers.get('authorization'));
        return null;
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        const refusal = appError(
          ErrorCode.UNAUTHENTICATED,
          error.expired ? 'Your token has expired: log in again.' : 'Invalid token.',
        );
        req.context.observed.failed([refusal]);
        return jsonError(401, 'Unauthorized', refusal);
      }
    },
    onSubscribe: async (req, params) => {
      const { observed } = req.context;
      observed.name(params.operationName);
      const identity = req.context.identity ?? { viewer: null, expiresAt: undefined };
      const limited = await checkRate(identity.viewer, req.raw.socket.remoteAddress);
      if (limited) return once({ errors: [limited] });
      const prepared = bridge.prepare(params);
      if (Array.isArray(prepared)) return once({ errors: prepared });
      observed.name(getOperationAST(prepared.document, prepared.operationName)?.name?.value);
      const res = req.context.res;
      const result = bridge.subscribe({
        ...prepared,
        viewer: identity.viewer,
        expiresAt: identity.expiresAt,
        transportBytes: () => res.writableLength,
        onOverflow: () => res.destroy(),
      });
      if (!(Symbol.asyncIterator in result)) return once(result);
      observed.started();
      return result;
    },
    onNext: (_ctx, req, result) => {
      if (!('errors' in result && result.errors)) return undefined;
      req.context.observed.failed(result.errors);
      // Formatted errors are plain objects where graphql-sse types GraphQLErrors: both go out as JSON.
      return { ...result, errors: formatErrors(result.errors) } as unknown as ExecutionResult;
    },
  });
  const parseJson = express.json({ limit: MAX_MESSAGE_BYTES });
  app.all([...PATHS], (req, res, next) => {
    if (!req.headers.accept?.includes('text/event-stream')) return next();
    // graphql-sse recognises only the exact media type.
    req.headers.accept = 'text/event-stream';
    parseJson(req, res, (error?: unknown) => {
      if (error) return next(error);
      serveEventStream(req, res).catch(next);
    });
  });

  // Started here, after the body parser: it resumes from the socket's stream events, whose async
  // context is not this request's (lib/observability/traceRequests.ts).
  async function serveEventStream(req: ExpressRequest, res: ServerResponse) {
    const observed = observer.start({
      transport: 'sse',
      headers: req.headers,
      requestId: req.headers[REQUEST_ID_HEADER],
    });
    res.setHeader(REQUEST_ID_HEADER, observed.requestId);
    res.once('close', () => observed.end());
    await observed.run(() => streamEvents(req, res, observed));
  }

  async function streamEvents(req: ExpressRequest, res: ServerResponse, observed: ObservedSubscription) {
    const [body, init] = await sse({
      method: req.method,
      url: req.url,
      headers: {
        get: (key) => {
          const value = req.headers[key];
          return Array.isArray(value) ? value.join('\n') : value;
        },
      },
      body: () => (req.body as Record<string, unknown> | undefined) ?? null,
      raw: req,
      context: { res, observed },
    });
    res.writeHead(init.status, init.statusText, init.headers);
    if (!body || typeof body === 'string') {
      res.end(body);
      return;
    }
    openStreams.add(res);
    res.once('close', () => {
      openStreams.delete(res);
      void body.return(undefined);
    });
    // Written without waiting for each flush, so the bound below is what limits memory: a
    // client whose unsent bytes pass it is dropped.
    for await (const chunk of body) {
      if (!res.writable) break;
      res.write(chunk);
      if (res.writableLength > config.SUBSCRIPTION_SEND_BUFFER_BYTES) {
        logger.warn('event-stream subscriber too slow: disconnecting');
        res.destroy();
        break;
      }
    }
    res.end();
  }

  /**
   * One result as an event stream (`next`, then `complete`), the way graphql-sse itself reports
   * validation errors. Returned as an object, a result without `data` (a refusal) would be taken
   * by graphql-sse for execution arguments and answered 400 "Unable to detect operation AST".
   */
  async function* once(result: ExecutionResult): AsyncGenerator<ExecutionResult> {
    yield result;
  }

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      httpServer.off('upgrade', onUpgrade);
      planner.stop();
      for (const res of openStreams) res.end();
      openStreams.clear();
      const disposed = wsCleanup.dispose(); // closes every client socket with 1001 (going away)
      coalescer.releaseAll(); // those close frames, behind whatever was held
      await disposed;
      shared.stop();
      await sockets.stop();
    })());

  const plugin: ApolloServerPlugin = {
    async serverWillStart() {
      return { drainServer: stop };
    },
  };
  return { plugin, stop, upstreamCount: () => shared.upstreamCount };
}
