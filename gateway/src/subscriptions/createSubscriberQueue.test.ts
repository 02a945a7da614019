import { GraphQLError, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSubscriberQueue, type SharedResult } from './createSubscriberQueue.ts';

const result = (n: number): ExecutionResult => ({ data: { n } });
/** Event n, said to take `bytes` once serialised. */
const event = (n: number, bytes: number): SharedResult => ({
  result: result(n),
  json: JSON.stringify(result(n)),
  bytes,
});

/** A queue with a 1 000-byte limit, recording what the transport would be told. */
function queue({
  transportBytes = () => 0,
  send,
}: { transportBytes?: () => number; send?: (event: SharedResult) => void } = {}) {
  const calls = { overflow: 0, close: 0 };
  const { subscriber, iterator } = createSubscriberQueue({
    maxBytes: 1_000,
    transportBytes,
    onOverflow: () => (calls.overflow += 1),
    onClose: () => (calls.close += 1),
    ...(send && { send }),
  });
  return { subscriber, iterator, calls };
}

async function drain(iterator: AsyncIterableIterator<ExecutionResult>): Promise<unknown[]> {
  const seen: unknown[] = [];
  for await (const item of iterator) seen.push(item.data?.['n'] ?? item.errors?.[0]?.message);
  return seen;
}

describe('a subscriber queue', () => {
  it('hands results to the reader in the order they came, then the final one, then ends', async () => {
    const { subscriber, iterator, calls } = queue();
    subscriber.deliver(event(1, 100));
    subscriber.deliver(event(2, 100));
    subscriber.end({ errors: [new GraphQLError('upstream gone')] });
    subscriber.deliver(event(3, 100)); // after the end: dropped
    expect(await drain(iterator)).toEqual([1, 2, 'upstream gone']);
    expect(calls).toEqual({ overflow: 0, close: 1 });
  });

  it('hands a result to a reader already waiting for one', async () => {
    const { subscriber, iterator } = queue();
    const next = iterator.next();
    subscriber.deliver(event(1, 100));
    expect(await next).toEqual({ done: false, value: result(1) });
  });

  it('cuts off a reader that falls more than the limit behind, and forgets what it held', async () => {
    const { subscriber, iterator, calls } = queue();
    for (let n = 1; n <= 4; n += 1) subscriber.deliver(event(n, 300)); // 1 200 bytes unread
    expect(calls).toEqual({ overflow: 1, close: 1 });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    subscriber.deliver(event(5, 10));
    expect(calls.overflow).toBe(1);
  });

  it("counts the transport's unsent bytes too", () => {
    const { subscriber, calls } = queue({ transportBytes: () => 950 });
    subscriber.deliver(event(1, 100));
    expect(calls.overflow).toBe(1);
  });

  it('still sends a single result larger than the limit to a reader that keeps up', async () => {
    const { subscriber, iterator, calls } = queue();
    subscriber.deliver(event(1, 5_000));
    expect(await iterator.next()).toEqual({ done: false, value: result(1) });
    expect(calls.overflow).toBe(0);
  });

  it('lets a reader leave while it waits for an event that never comes', async () => {
    const { iterator, calls } = queue();
    const waiting = iterator.next();
    await iterator.return();
    expect(await waiting).toEqual({ done: true, value: undefined });
    expect(calls).toEqual({ overflow: 0, close: 1 });
    await iterator.return(); // leaving twice closes once
    expect(calls.close).toBe(1);
  });
});

/**
 * With `send` (graphql-ws: the next message written straight to the socket), a client with
 * nothing waiting gets each result at once; one with a backlog gets them through the iterator,
 * in order behind it, under the same limit.
 */
describe('a subscriber queue that can send at once', () => {
  /** A transport whose socket holds `unsent` bytes, recording in order what reached the client. */
  function transport() {
    const wire: number[] = [];
    const socket = { unsent: 0 };
    const q = queue({
      transportBytes: () => socket.unsent,
      send: (e) => wire.push(e.result.data?.['n'] as number),
    });
    /** The transport draining the iterator as graphql-ws does: write, wait for the write, next. */
    const pump = async () => {
      for await (const item of q.iterator) {
        wire.push((item.data?.['n'] as number | undefined) ?? -1);
        await Promise.resolve(); // the awaited write
      }
    };
    return { ...q, wire, socket, pump };
  }

  it('sends each result at once, without the iterator, while the client keeps up', () => {
    const { subscriber, wire, calls } = transport();
    subscriber.deliver(event(1, 100));
    subscriber.deliver(event(2, 100));
    expect(wire).toEqual([1, 2]);
    expect(calls).toEqual({ overflow: 0, close: 0 });
  });

  it('queues behind a backlog in the socket, and keeps the order once it clears', async () => {
    const { subscriber, wire, socket, pump } = transport();
    const pumping = pump();
    subscriber.deliver(event(1, 100));
    socket.unsent = 500; // event 1 is still in the socket
    subscriber.deliver(event(2, 100));
    subscriber.deliver(event(3, 100));
    socket.unsent = 0;
    // 2 was handed to the transport and 3 waits behind it: 4 must not overtake them.
    subscriber.deliver(event(4, 100));
    await new Promise((resolve) => setImmediate(resolve));
    subscriber.deliver(event(5, 100)); // all written: at once again
    subscriber.end({ data: { n: 6 } });
    await pumping;
    expect(wire).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('cuts off a client whose backlog passes the limit', () => {
    const { subscriber, wire, socket, calls } = transport();
    socket.unsent = 800;
    subscriber.deliver(event(1, 100)); // 900 bytes waiting: still within the limit
    subscriber.deliver(event(2, 200));
    expect(calls).toEqual({ overflow: 1, close: 1 });
    expect(wire).toEqual([]);
  });

  it('sends nothing after the end', () => {
    const { subscriber, wire } = transport();
    subscriber.end();
    subscriber.deliver(event(1, 100));
    expect(wire).toEqual([]);
  });
});
