import { GraphQLError, type ExecutionResult } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createSubscriberQueue } from './createSubscriberQueue.ts';

const result = (n: number): ExecutionResult => ({ data: { n } });

/** A queue with a 1 000-byte limit, recording what the transport would be told. */
function queue({ transportBytes = () => 0 }: { transportBytes?: () => number } = {}) {
  const calls = { overflow: 0, close: 0 };
  const { subscriber, iterator } = createSubscriberQueue({
    maxBytes: 1_000,
    transportBytes,
    onOverflow: () => (calls.overflow += 1),
    onClose: () => (calls.close += 1),
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
    subscriber.deliver(result(1), 100);
    subscriber.deliver(result(2), 100);
    subscriber.end({ errors: [new GraphQLError('upstream gone')] });
    subscriber.deliver(result(3), 100); // after the end: dropped
    expect(await drain(iterator)).toEqual([1, 2, 'upstream gone']);
    expect(calls).toEqual({ overflow: 0, close: 1 });
  });

  it('hands a result to a reader already waiting for one', async () => {
    const { subscriber, iterator } = queue();
    const next = iterator.next();
    subscriber.deliver(result(1), 100);
    expect(await next).toEqual({ done: false, value: result(1) });
  });

  it('cuts off a reader that falls more than the limit behind, and forgets what it held', async () => {
    const { subscriber, iterator, calls } = queue();
    for (let n = 1; n <= 4; n += 1) subscriber.deliver(result(n), 300); // 1 200 bytes unread
    expect(calls).toEqual({ overflow: 1, close: 1 });
    expect(await iterator.next()).toEqual({ done: true, value: undefined });
    subscriber.deliver(result(5), 10);
    expect(calls.overflow).toBe(1);
  });

  it("counts the transport's unsent bytes too", () => {
    const { subscriber, calls } = queue({ transportBytes: () => 950 });
    subscriber.deliver(result(1), 100);
    expect(calls.overflow).toBe(1);
  });

  it('still sends a single result larger than the limit to a reader that keeps up', async () => {
    const { subscriber, iterator, calls } = queue();
    subscriber.deliver(result(1), 5_000);
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
