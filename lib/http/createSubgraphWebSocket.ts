import type { Server } from 'node:http';
import {
  GraphQLError,
  parse,
  validate,
  type ExecutionArgs,
  type GraphQLFormattedError,
  type GraphQLSchema,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import {
  InvalidTokenError,
  SERVICE_CREDENTIAL_HEADER,
  type ServiceCaller,
  type ServiceCredentials,
} from '../auth/tokens.ts';
import { unauthenticated } from '../errors.ts';
import { subscribeToEvents } from '../graphql/subscribeToEvents.ts';
import type { Metrics } from '../observability/createMetrics.ts';

export interface SubgraphWebSocketOptions<TContext extends object> {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  credentials: ServiceCredentials;
  createContext: (caller: ServiceCaller) => TContext;
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  production: boolean;
  /** `subgraph_subscriptions`: the subscriptions running now. */
  metrics?: Metrics;
}

/**
 * GraphQL over WebSocket (graphql-ws, subprotocol graphql-transport-ws) on the subgraph's HTTP
 * server, for the gateway's subscriptions. The contract with the gateway:
 * - `connection_init` carries `{ "x-service-credential": <signed credential> }`; without a valid
 *   one the socket is closed with 4403 Forbidden, before any operation;
 * - a `subscribe` message may carry `extensions["x-service-credential"]`, a credential for the end
 *   user of that operation: the gateway multiplexes many users over one socket per subgraph, so
 *   identity is per operation, the connection's only a fallback.
 * - each event of a live value (lib/graphql/liveValue.ts) carries `extensions["x-live-value"]`,
 *   so the gateway may hand the latest one to a subscriber who joins later.
 * Contexts come from the same `createContext` as HTTP, errors are formatted as over HTTP.
 */
export function createSubgraphWebSocket<TContext extends object>(
  options: SubgraphWebSocketOptions<TContext>,
) {
  const { schema, credentials, createContext, formatError } = options;
  const wss = new WebSocketServer({ server: options.httpServer, path: options.path });
  // Which caller a subscription's context was built for, to build a fresh context per event.
  const callers = new WeakMap<object, ServiceCaller>();
  const format = (errors: readonly GraphQLError[]) =>
    errors.map((error) => formatError(error.toJSON(), error));
  // Operations whose subscribe resolver returned an event stream, until it ends. graphql-ws calls
  // onComplete after every operation that reached onOperation, however it ended.
  const running = new WeakMap<object, Set<string>>();
  let runningCount = 0;
  options.metrics?.gauge({
    name: 'subgraph_subscriptions',
    help: 'Subscriptions this subgraph serves over graphql-ws right now (subscribe resolver done, not ended)',
    collect() {
      this.set(runningCount);
    },
  });

  async function verify(credential: unknown): Promise<ServiceCaller> {
    if (typeof credential !== 'string' || credential === '') {
      throw unauthenticated('subgraph subscriptions accept only calls signed by the gateway or a sibling');
    }
    try {
      return await credentials.verify(credential);
    } catch (error) {
      if (error instanceof InvalidTokenError) throw unauthenticated(`service credential: ${error.message}`);
      throw error;
    }
  }

  /** Each event with a new context for the subscription's caller (fresh DataLoaders). */
  function subscribe(args: ExecutionArgs) {
    const caller = callers.get(args.contextValue as object);
    return subscribeToEvents(args, {
      contextForEvent: () => (caller ? createContext(caller) : args.contextValue),
    });
  }

  const server = useServer<Record<string, unknown>, { caller: ServiceCaller }>(
    {
      schema,
      subscribe,
      onConnect: async (ctx) => {
        try {
          ctx.extra.caller = await verify(ctx.connectionParams?.[SERVICE_CREDENTIAL_HEADER]);
          return true;
        } catch (error) {
          if (error instanceof GraphQLError) return false;
          throw error;
        }
      },
      onSubscribe: async (ctx, _id, payload) => {
        let caller = ctx.extra.caller!;
        const perOperation = payload.extensions?.[SERVICE_CREDENTIAL_HEADER];
        if (perOperation !== undefined) {
          try {
            caller = await verify(perOperation);
          } catch (error) {
            if (error instanceof GraphQLError) return [error];
            throw error;
          }
        }
        let document;
        try {
          document = parse(payload.query);
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const contextValue = createContext(caller);
        callers.set(contextValue, caller);
        return {
          schema,
          document,
          contextValue,
          variableValues: payload.variables ?? null,
          operationName: payload.operationName ?? null,
        };
      },
      onOperation: (ctx, id, _payload, _args, result) => {
        if (!(Symbol.asyncIterator in result)) return;
        let ids = running.get(ctx);
        if (!ids) running.set(ctx, (ids = new Set()));
        ids.add(id);
        runningCount += 1;
      },
      onComplete: (ctx, id) => {
        if (running.get(ctx)?.delete(id)) runningCount -= 1;
      },
      onNext: (_ctx, _id, _payload, _args, result) =>
        result.errors ? { ...result, errors: format(result.errors) } : undefined,
      onError: (_ctx, _id, _payload, errors) => format(errors),
      isProd: options.production,
    },
    wss,
  );

  let closing: Promise<void> | undefined;
  return {
    /** Closes every socket with 1001 (going away) and stops accepting new ones. Idempotent. */
    close(): Promise<void> {
      closing ??= Promise.resolve(server.dispose());
      return closing;
    },
  };
}
