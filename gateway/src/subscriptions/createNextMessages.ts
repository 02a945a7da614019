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
 * byte for byte what graphql-ws sends (createNextMessages.test.ts).
 *
 * `frame` gives the message as a WebSocket text frame in two parts, the frame header with the
 * client's id, then the event's shared bytes, for the gateway to write to the client's TCP
 * socket itself: no copy of the event per client. Copying it into each client's message (a
 * Buffer.concat per delivery, the most recent several hundred thousand alive until written)
 * was a fifth of the fan-out's CPU with its garbage collection (subscriptions-fanout.md).
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
    return {
      /** The message as one unmasked WebSocket text frame (RFC 6455 §5.2): header and id, then the shared bytes. */
      frame(event: SharedResult): [Buffer, Buffer] {
        const tail = tailOf(event);
        const length = head.length + tail.length;
        const headerLength = length < 126 ? 2 : length < 65_536 ? 4 : 10;
        const first = Buffer.allocUnsafe(headerLength + head.length);
        first[0] = 0x81; // FIN, opcode 1 (text)
        if (headerLength === 2) {
          first[1] = length;
        } else if (headerLength === 4) {
          first[1] = 126;
          first.writeUInt16BE(length, 2);
        } else {
          first[1] = 127;
          first.writeBigUInt64BE(BigInt(length), 2);
        }
        head.copy(first, headerLength);
        return [first, tail];
      },
    };
  };
}
export type NextMessages = ReturnType<typeof createNextMessages>;
