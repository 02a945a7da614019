import type { Server } from 'node:http';
import {
  createSourceEventStream,
  execute,
  GraphQLError,
  parse,
  validate,
  type ExecutionArgs,
  type ExecutionResult,
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

export interface SubgraphWebSocketOptions<TContext extends object> {
  httpServer: Server;
  path: string;
  schema: GraphQLSchema;
  credentials: ServiceCredentials;
  createContext: (caller: ServiceCaller) => TContext;
  formatError: (formatted: GraphQLFormattedError, error: unknown) => GraphQLFormattedError;
  production: boolean;
}

/**
 * GraphQL over WebSocket (graphql-ws, subprotocol graphql-transport-ws) on the subgraph's HTTP
 * server, for the gateway's subscriptions. The contract with the gateway:
 * - `connection_init` carries `{ "x-service-credential": <signed credential> }`; without a valid
 *   one the socket is closed with 4403 Forbidden, before any operation;
 * - a `subscribe` message may carry `extensions["x-service-credential"]`, a credential for the end
 *   user of that operation: the gateway multiplexes many users over one socket per subgraph, so
 *   identity is per operation, the connection's only a fallback.
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

  /**
   * graphql-js' subscribe runs every event with the subscription's one context, but contexts hold
   * request-scoped DataLoaders: their caches would serve the first event's rows to all later ones.
   * Each event gets a new context for the same caller instead.
   */
  async function subscribe(args: ExecutionArgs) {
    const stream = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in stream)) return stream;
    const source = stream[Symbol.asyncIterator]();
    const caller = callers.get(args.contextValue as object);
    const contextFor = () => (caller ? createContext(caller) : args.contextValue);
    const mapped: AsyncGenerator<ExecutionResult, void, unknown> = {
      [Symbol.asyncIterator]() {
        return mapped;
      },
      async next() {
        const event = await source.next();
        if (event.done) return { done: true, value: undefined };
        const value = await execute({ ...args, rootValue: event.value, contextValue: contextFor() });
        return { done: false, value };
      },
      async return() {
        await source.return?.();
        return { done: true, value: undefined };
      },
      async throw(error: unknown) {
        await source.return?.();
        throw error;
      },
    };
    return mapped;
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
