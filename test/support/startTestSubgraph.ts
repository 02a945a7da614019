import { createServer, type Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginInlineTraceDisabled } from '@apollo/server/plugin/disabled';
import { buildSubgraphSchema } from '@apollo/subgraph';
import type { GraphQLSchemaModule } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';
import { GraphQLError, parse, validate, type DocumentNode } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { SERVICE_CREDENTIAL_HEADER, type ServiceCredentials, type Viewer } from '../../lib/auth/tokens.ts';
import { unauthenticated } from '../../lib/errors.ts';
import { liveValue } from '../../lib/graphql/liveValue.ts';
import { subscribeToEvents } from '../../lib/graphql/subscribeToEvents.ts';
import { listen } from '../../lib/http/listen.ts';

export interface TestSubgraphContext {
  viewer: Viewer | null;
}

export interface TestSubgraph {
  url: string;
  port: number;
  /** Subscriptions the subgraph has accepted since it started. */
  readonly subscribeCount: number;
  /** Subscriptions running right now. */
  readonly activeSubscriptions: number;
  /** Cuts every WebSocket (a network blip): clients must reconnect. */
  dropConnections(): void;
  stop(): Promise<void>;
}

/**
 * A small federated subgraph for gateway tests, with the real transport contract: HTTP at
 * /graphql and graphql-ws on the same URL, both trusting only the gateway's signed
 * credential (header for HTTP; connection_init payload, then `extensions` of every subscribe
 * naming the viewer, for WebSocket).
 */
export async function startTestSubgraph({
  typeDefs,
  resolvers,
  credentials,
  port = 0,
}: {
  typeDefs: DocumentNode;
  resolvers: GraphQLSchemaModule['resolvers'];
  credentials: ServiceCredentials;
  port?: number;
}): Promise<TestSubgraph> {
  const schema = buildSubgraphSchema({ typeDefs, resolvers });
  const app = express();
  const httpServer: Server = createServer(app);
  const apollo = new ApolloServer<TestSubgraphContext>({
    schema,
    plugins: [ApolloServerPluginInlineTraceDisabled()],
  });
  await apollo.start();
  app.use(
    '/graphql',
    express.json(),
    expressMiddleware(apollo, {
      context: async ({ req }) => {
        const credential = req.headers[SERVICE_CREDENTIAL_HEADER];
        if (typeof credential !== 'string') throw unauthenticated('unsigned call');
        return { viewer: (await credentials.verify(credential)).viewer };
      },
    }),
  );

  let subscribeCount = 0;
  let activeSubscriptions = 0;
  const wsServer = new WebSocketServer({ server: httpServer, path: '/graphql' });
  const ws = useServer(
    {
      schema,
      // As the real subgraphs do (lib/http/createSubgraphWebSocket.ts): live values are marked.
      subscribe: (args) => subscribeToEvents(args),
      onConnect: async (ctx) => {
        const credential = ctx.connectionParams?.[SERVICE_CREDENTIAL_HEADER];
        if (typeof credential !== 'string') return false;
        return credentials.verify(credential).then(
          () => true,
          () => false,
        );
      },
      onSubscribe: async (_ctx, _id, payload) => {
        const credential = payload.extensions?.[SERVICE_CREDENTIAL_HEADER];
        let viewer: Viewer | null;
        try {
          if (typeof credential !== 'string') throw new Error('no credential');
          viewer = (await credentials.verify(credential)).viewer;
        } catch {
          return [unauthenticated('subscribe without a valid service credential')];
        }
        const document = parse(payload.query);
        const errors = validate(schema, document);
        if (errors.length > 0) return [...errors];
        subscribeCount += 1;
        return {
          schema,
          document,
          variableValues: payload.variables ?? {},
          operationName: payload.operationName ?? null,
          contextValue: { viewer } satisfies TestSubgraphContext,
        };
      },
      onOperation: () => {
        activeSubscriptions += 1;
      },
      onComplete: () => {
        activeSubscriptions -= 1;
      },
    },
    wsServer,
  );
  const boundPort = await listen(httpServer, port, '127.0.0.1');

  let stopped: Promise<void> | undefined;
  return {
    url: `http://127.0.0.1:${boundPort}/graphql`,
    port: boundPort,
    get subscribeCount() {
      return subscribeCount;
    },
    get activeSubscriptions() {
      return activeSubscriptions;
    },
    dropConnections() {
      for (const client of wsServer.clients) client.terminate();
    },
    stop() {
      stopped ??= (async () => {
        for (const client of wsServer.clients) client.terminate();
        await ws.dispose();
        httpServer.closeAllConnections();
        await new Promise((resolve) => httpServer.close(resolve));
        await apollo.stop();
      })();
      return stopped;
    },
  };
}

/**
 * Events for one subscription: an async iterator with a working `return()` (an async
 * generator waiting for its next event could not be ended by a leaving client). `iterate` gives
 * the events from now on; `latest` gives a live value (lib/graphql/liveValue.ts): the last event
 * published, at once, then each new one.
 */
export function createEventSource<T>() {
  const listeners = new Set<(event: T) => void>();
  let last: { event: T } | undefined;
  const iterate = (first?: { event: T }): AsyncIterableIterator<T> => {
    const queue: T[] = first ? [first.event] : [];
    let waiting: ((result: IteratorResult<T>) => void) | undefined;
    let done = false;
    const listener = (event: T) => {
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value: event, done: false });
      } else queue.push(event);
    };
    listeners.add(listener);
    const finish = (): Promise<IteratorResult<T>> => {
      done = true;
      listeners.delete(listener);
      waiting?.({ value: undefined, done: true });
      waiting = undefined;
      return Promise.resolve({ value: undefined, done: true });
    };
    const iterator: AsyncIterableIterator<T> = {
      [Symbol.asyncIterator]: () => iterator,
      next: () => {
        if (done) return Promise.resolve({ value: undefined, done: true });
        const next = queue.shift();
        if (next !== undefined) return Promise.resolve({ value: next, done: false });
        return new Promise((resolve) => (waiting = resolve));
      },
      return: finish,
      throw: (error: unknown) => {
        void finish();
        return Promise.reject(error instanceof GraphQLError ? error : new Error(String(error)));
      },
    };
    return iterator;
  };
  return {
    publish(event: T) {
      last = { event };
      for (const listener of listeners) listener(event);
    },
    get listeners() {
      return listeners.size;
    },
    iterate: () => iterate(),
    latest: () => liveValue(iterate(last)),
  };
}
