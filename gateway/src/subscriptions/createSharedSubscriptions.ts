import { context as traceContext, ROOT_CONTEXT } from '@opentelemetry/api';
import { GraphQLError, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import type { ServiceCredentials, Viewer } from '../../../lib/auth/tokens.ts';
import { ErrorCode } from '../../../lib/errors.ts';
import { isLiveValueEvent } from '../../../lib/graphql/liveValue.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import type { SubscriptionPlan } from './createSubscriptionPlanner.ts';
import type { SubgraphSockets } from './createSubgraphSockets.ts';
import type { SharedResult, Subscriber } from './createSubscriberQueue.ts';
import { executeSubscriptionEvent } from './executeSubscriptionEvent.ts';

/**
 * Deliveries made in one turn of the event loop before a burst yields (setImmediate), so that
 * HTTP requests and other sockets are served between slices of a fan-out to thousands of
 * clients instead of after all of it (issue #7: placeOrder took seconds behind a burst).
 * A WebSocket delivery only frames the message into its held socket (createWriteCoalescer.ts:
 * the syscalls come later, in their own slices), a few µs: 2,048 make a few milliseconds. Many
 * more than the coalescer releases per turn, so that an event reaches the clients whose earlier
 * events are still held while they are, and goes out in the same write.
 */
const DELIVERIES_PER_TURN = 2048;
const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

export interface SharedSubscriptionRequest {
  /** Identical subscriptions (same key) share one upstream subscription and one rest execution per event. */
  key: string;
  plan: SubscriptionPlan;
  variables: Record<string, unknown>;
  viewer: Viewer | null;
}

interface Stream {
  subscribers: Set<Subscriber>;
  /**
   * The last result of a live value (lib/graphql/liveValue.ts), handed at once to a subscriber
   * who joins: the upstream sent its current value to the first subscriber only.
   */
  latest?: SharedResult;
  stop: () => void;
}

const toGraphQLError = (error: GraphQLFormattedError) =>
  new GraphQLError(error.message, {
    ...(error.path ? { path: error.path } : {}),
    ...(error.extensions ? { extensions: error.extensions } : {}),
  });

/**
 * Fan-out of upstream subscriptions. The first client of a key opens the upstream
 * subscription; later ones join it; when the last one leaves, the upstream is completed.
 * Each event is turned into the client result once (rest plan included) and handed to every
 * subscriber, in the order the subgraph sent the events.
 *
 * Live values (each event the whole current value, the first at once: salesMetricsUpdated) are
 * kept whole for everyone: a subscriber who joins gets the latest result at once, and a result
 * equal to the latest one (what a resubscription after a dropped socket sends when nothing
 * changed meanwhile) is not sent again. Streams of changes are never replayed: an old change is
 * not news to someone who just subscribed.
 */
export function createSharedSubscriptions({
  sockets,
  credentials,
  logger,
  encode = JSON.stringify,
  deliveriesPerTurn = DELIVERIES_PER_TURN,
  execute = executeSubscriptionEvent,
  onFannedOut,
}: {
  sockets: SubgraphSockets;
  credentials: ServiceCredentials;
  logger: Logger;
  /**
   * A result as clients receive it (errors formatted), serialised once per event for all its
   * subscribers: the WebSocket transport sends this text itself rather than re-serialising the
   * result for every client.
   */
  encode?: (result: ExecutionResult) => string;
  /** Deliveries between two yields to the event loop during a fan-out. */
  deliveriesPerTurn?: number;
  /** Turns an upstream event into the client result (the rest plan). */
  execute?: typeof executeSubscriptionEvent;
  /**
   * Called when an event has been handed to every subscriber, with the subgraph it came from
   * and when it came (`performance.now()`): the fan-out's latency, for the gateway's metrics.
   */
  onFannedOut?: (subgraph: string, receivedAt: number) => void;
}) {
  const streams = new Map<string, Stream>();

  const open = ({ key, plan, variables, viewer }: SharedSubscriptionRequest): Stream => {
    const subscribers = new Set<Subscriber>();
    let chain: Promise<void> = Promise.resolve();
    let ended = false;
    const endAll = (final?: ExecutionResult) => {
      ended = true;
      if (streams.get(key) === stream) streams.delete(key);
      for (const subscriber of subscribers) subscriber.end(final);
      subscribers.clear();
    };
    const { primary } = plan;
    const endpoint = plan.endpoints.get(primary.serviceName);
    const upstreamVariables = Object.fromEntries(
      (primary.variableUsages ?? [])
        .filter((name) => name in variables)
        .map((name) => [name, variables[name]]),
    );
    const stream: Stream = {
      subscribers,
      stop: () => {},
    };
    if (!endpoint) {
      queueMicrotask(() =>
        endAll({
          errors: [
            new GraphQLError(`The ${primary.serviceName} subgraph is not in the supergraph.`, {
              extensions: { code: ErrorCode.SERVICE_UNAVAILABLE },
            }),
          ],
        }),
      );
      return stream;
    }
    // Outside the first subscriber's context: the upstream (and the socket it may open, whose
    // events run in the context it was opened in) serves everyone who joins, for as long as
    // anyone does, so no one subscriber's request id or span should mark its events.
    stream.stop = traceContext.with(ROOT_CONTEXT, () =>
      sockets.subscribe(
        {
          subgraph: primary.serviceName,
          url: endpoint.url,
          query: primary.operation,
          operationName: primary.operationName,
          variables: upstreamVariables,
          viewer,
        },
        {
          next: (event) => {
            const receivedAt = performance.now();
            chain = chain.then(async () => {
              if (ended) return;
              const context: GatewayContext = {
                viewer,
                // One upstream event serves every client sharing it: no single client's address.
                clientIp: 'shared-subscription',
                serviceCredential: () => credentials.sign(viewer),
              };
              let result: ExecutionResult;
              try {
                result = await execute({ plan, event, variables, context, logger });
              } catch (error) {
                logger.error({ err: error, subgraph: primary.serviceName }, 'subscription event failed');
                result = {
                  data: null,
                  errors: [
                    new GraphQLError('Internal server error', {
                      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
                    }),
                  ],
                };
              }
              const json = encode(result);
              const shared: SharedResult = { result, json, bytes: Buffer.byteLength(json) };
              if (isLiveValueEvent(event)) {
                if (stream.latest?.json === json) return;
                stream.latest = shared;
              }
              // To those subscribed when the event came and still there: one who joins during a
              // yield below got `latest` as it joined.
              let index = 0;
              for (const subscriber of [...subscribers]) {
                if (index > 0 && index % deliveriesPerTurn === 0) await nextTurn();
                index += 1;
                if (subscribers.has(subscriber)) subscriber.deliver(shared);
              }
              onFannedOut?.(primary.serviceName, receivedAt);
            });
          },
          error: (errors) => {
            chain = chain.then(() => endAll({ errors: errors.map(toGraphQLError) }));
          },
          complete: () => {
            chain = chain.then(() => endAll());
          },
        },
      ),
    );
    return stream;
  };

  return {
    /** Adds a subscriber to the stream of `request.key`; the returned function removes it. */
    join(request: SharedSubscriptionRequest, subscriber: Subscriber): () => void {
      let stream = streams.get(request.key);
      if (!stream) {
        stream = open(request);
        streams.set(request.key, stream);
      }
      const joined = stream;
      joined.subscribers.add(subscriber);
      if (joined.latest) subscriber.deliver(joined.latest);
      return () => {
        if (!joined.subscribers.delete(subscriber)) return;
        if (joined.subscribers.size > 0) return;
        if (streams.get(request.key) === joined) streams.delete(request.key);
        joined.stop();
      };
    },

    /** Upstream subscriptions currently open (one per distinct key). */
    get upstreamCount() {
      return streams.size;
    },

    /** Client subscriptions currently served, over all upstreams. */
    get subscriberCount() {
      let count = 0;
      for (const stream of streams.values()) count += stream.subscribers.size;
      return count;
    },

    stop() {
      for (const stream of streams.values()) stream.stop();
      streams.clear();
    },
  };
}
export type SharedSubscriptions = ReturnType<typeof createSharedSubscriptions>;
