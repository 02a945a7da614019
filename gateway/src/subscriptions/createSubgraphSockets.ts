import { createClient, type Client } from 'graphql-ws';
import type { FormattedExecutionResult, GraphQLFormattedError } from 'graphql';
import WebSocket from 'ws';
import { SERVICE_CREDENTIAL_HEADER, type ServiceCredentials, type Viewer } from '../../../lib/auth/tokens.ts';
import { ErrorCode } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/logger.ts';

export interface UpstreamRequest {
  subgraph: string;
  /** The subgraph's HTTP GraphQL URL; its WebSocket is the same URL with ws(s)://. */
  url: string;
  query: string;
  operationName: string | undefined;
  variables: Record<string, unknown>;
  viewer: Viewer | null;
}

export interface UpstreamSink {
  next(event: FormattedExecutionResult): void;
  /** The subscription failed for good: refused by the subgraph, or the subgraph is gone. */
  error(errors: GraphQLFormattedError[]): void;
  complete(): void;
}

const MAX_RETRY_DELAY_MS = 10_000;

const isGraphQLErrors = (value: unknown): value is GraphQLFormattedError[] =>
  Array.isArray(value) && value.every((e) => typeof e === 'object' && e !== null && 'message' in e);

/** One subgraph's socket and the subscriptions riding on it. */
interface SocketEntry {
  client: Client;
  /** Acknowledged (connection_ack received) and not closed since. */
  acknowledged: boolean;
  /** Each subscription sent on this socket: told when the socket is (re)acknowledged. */
  onAcknowledged: Set<() => void>;
}

/**
 * The gateway's WebSockets to subgraphs: one graphql-ws connection per subgraph, multiplexing
 * every upstream subscription to it. connection_init carries the gateway's credential; each
 * subscribe carries a fresh credential naming the viewer in `extensions`, as HTTP requests do.
 *
 * When a socket drops, each subscription on it is resubscribed with exponential backoff (and
 * jitter, so a restarted subgraph is not hit by every subscription at once). graphql-ws's own
 * retry is off on purpose: it resends the original subscribe message, whose short-lived
 * credential would have expired by the time a subgraph comes back. Clients hear of it only
 * when the attempts run out (SERVICE_UNAVAILABLE).
 *
 * The attempts count one outage: they start again for every subscription on a socket as soon
 * as that socket is acknowledged again, whichever subscription reopened it. (Counting them per
 * subscription until its own event or its own reconnect let quiet subscriptions that found the
 * socket already back climb one attempt per outage, and give up on a healthy subgraph.)
 */
export function createSubgraphSockets({
  credentials,
  logger,
  retryAttempts,
  retryDelayMs,
}: {
  credentials: ServiceCredentials;
  logger: Logger;
  retryAttempts: number;
  retryDelayMs: number;
}) {
  const clients = new Map<string, SocketEntry>();

  const clientFor = (url: string): SocketEntry => {
    const wsUrl = url.replace(/^http/, 'ws');
    let entry = clients.get(wsUrl);
    if (!entry) {
      const created: SocketEntry = {
        acknowledged: false,
        onAcknowledged: new Set(),
        client: createClient({
          url: wsUrl,
          webSocketImpl: WebSocket,
          lazy: true,
          retryAttempts: 0,
          // A fresh credential for every (re)connection.
          connectionParams: async () => ({ [SERVICE_CREDENTIAL_HEADER]: await credentials.sign(null) }),
          on: {
            connected: () => {
              created.acknowledged = true;
              for (const reset of created.onAcknowledged) reset();
            },
            closed: () => {
              created.acknowledged = false;
            },
          },
        }),
      };
      entry = created;
      clients.set(wsUrl, entry);
    }
    return entry;
  };

  return {
    /** Starts an upstream subscription; the returned function ends it. */
    subscribe(request: UpstreamRequest, sink: UpstreamSink): () => void {
      let finished = false;
      let attempt = 0;
      let release: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;

      const finish = (outcome: () => void) => {
        if (finished) return;
        finished = true;
        outcome();
      };

      const retryOrGiveUp = (cause: unknown) => {
        if (attempt >= retryAttempts) {
          logger.warn({ subgraph: request.subgraph, err: cause }, 'subgraph subscription lost for good');
          finish(() =>
            sink.error([
              {
                message: `The ${request.subgraph} subgraph is unavailable.`,
                extensions: { code: ErrorCode.SERVICE_UNAVAILABLE, serviceName: request.subgraph },
              },
            ]),
          );
          return;
        }
        const delay = Math.min(MAX_RETRY_DELAY_MS, retryDelayMs * 2 ** attempt) * (0.5 + Math.random() / 2);
        attempt += 1;
        logger.info(
          { subgraph: request.subgraph, attempt, delayMs: Math.round(delay) },
          'subgraph subscription dropped; resubscribing',
        );
        timer = setTimeout(() => void start(), delay);
      };

      // The socket is up again: whatever drops next is a new outage.
      const resetAttempts = () => {
        attempt = 0;
      };
      let entry: SocketEntry | undefined;
      const leaveSocket = () => entry?.onAcknowledged.delete(resetAttempts);

      const start = async () => {
        if (finished) return;
        let credential: string;
        try {
          credential = await credentials.sign(request.viewer);
        } catch (error) {
          finish(() => sink.error([{ message: 'Could not sign the subgraph credential.' }]));
          logger.error({ err: error }, 'signing a subscription credential failed');
          return;
        }
        if (finished) return;
        entry = clientFor(request.url);
        entry.onAcknowledged.add(resetAttempts);
        // Sent on a socket that is already back (another subscription reopened it).
        if (entry.acknowledged) resetAttempts();
        release = entry.client.subscribe(
          {
            query: request.query,
            ...(request.operationName ? { operationName: request.operationName } : {}),
            variables: request.variables,
            extensions: { [SERVICE_CREDENTIAL_HEADER]: credential },
          },
          {
            next: (event) => {
              if (finished) return;
              sink.next(event as FormattedExecutionResult);
            },
            error: (error) => {
              release = undefined;
              leaveSocket();
              if (finished) return;
              // An error message from the subgraph (it refused the subscription) is final.
              if (isGraphQLErrors(error)) finish(() => sink.error(error));
              else retryOrGiveUp(error);
            },
            complete: () => {
              release = undefined;
              leaveSocket();
              finish(() => sink.complete());
            },
          },
        );
      };

      void start();
      return () => {
        finished = true;
        clearTimeout(timer);
        leaveSocket();
        release?.();
        release = undefined;
      };
    },

    async stop() {
      const all = [...clients.values()];
      clients.clear();
      // dispose() is typed as possibly void; it returns a promise that settles once the socket closed.
      await Promise.all(all.map(({ client }) => Promise.resolve(client.dispose())));
    },
  };
}
export type SubgraphSockets = ReturnType<typeof createSubgraphSockets>;
