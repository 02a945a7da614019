import type { ExecutionResult, GraphQLError, GraphQLFormattedError } from 'graphql';
import type { SharedResult } from './createSubscriberQueue.ts';

/**
 * A result as the transports send it (their onNext hooks, and the shared serialisation below):
 * its errors formatted as over HTTP, nothing else changed.
 */
export function formattedResult(
  result: ExecutionResult,
  formatErrors: (errors: readonly GraphQLError[]) => GraphQLFormattedError[],
): ExecutionResult | (Omit<ExecutionResult, 'errors'> & { errors: GraphQLFormattedError[] }) {
  return result.errors ? { ...result, errors: formatErrors(result.errors) } : result;
}

/**
 * graphql-ws `next` messages made from a result serialised once for all its subscribers.
 *
 * graphql-ws builds `{ id, type: 'next', payload }` and JSON-serialises it again for every
 * client (its `stringifyMessage`), then `ws` and `net` measure and encode that string once more:
 * at thousands of clients per event, that was a tenth of the gateway's CPU and much of its
 * garbage (issue #7, bench/results/subscriptions.md). Here the part after the id is encoded to
 * bytes once per event, and a client's message is its own `{"id":"…"` followed by those bytes:
 * byte for byte what graphql-ws sends (createNextMessages.test.ts). Sent as a Buffer, `ws` frames
 * it without copying it again.
 */
export function createNextMessages() {
  const tails = new WeakMap<SharedResult, Buffer>();
  const tailOf = (event: SharedResult) => {
    let tail = tails.get(event);
    if (!tail) tails.set(event, (tail = Buffer.from(`,"type":"next","payload":${event.json}}`)));
    return tail;
  };
  /** The `next` messages of the client subscription `id`. */
  return (id: string) => {
    const head = Buffer.from(`{"id":${JSON.stringify(id)}`);
    return (event: SharedResult): Buffer => {
      const tail = tailOf(event);
      return Buffer.concat([head, tail], head.length + tail.length);
    };
  };
}
export type NextMessages = ReturnType<typeof createNextMessages>;
