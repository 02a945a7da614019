import type { ExecutionResult } from 'graphql';

/** One event's result, shared by all the subscribers it goes to. */
export interface SharedResult {
  readonly result: ExecutionResult;
  /** `result` as clients receive it (errors formatted), serialised once for all subscribers. */
  readonly json: string;
  /** Its size in UTF-8 bytes. */
  readonly bytes: number;
}

export interface Subscriber {
  /** One result for this client. */
  deliver(event: SharedResult): void;
  /** No more results (after `final`, if given): the upstream completed or failed. */
  end(final?: ExecutionResult): void;
}

/**
 * One client's results on their way out: an async iterator for graphql-ws / graphql-sse to
 * drain, fed by a shared upstream. The transports await each write, so a client that reads
 * slowly leaves results waiting here; once those bytes plus the socket's own unsent bytes pass
 * `maxBytes`, the client is cut off (`onOverflow`) rather than let memory grow without bound.
 * A single result larger than the limit still goes out to a client that is keeping up.
 *
 * With `send`, a result goes straight to the transport, synchronously, whenever nothing of this
 * client's is waiting (nothing queued here, nothing handed to the transport and not yet
 * written, no unsent bytes in its socket): the common case then costs no promise and no
 * iterator step (issue #7). Only a client with a backlog takes the iterator, in order behind it.
 *
 * A hand-written iterator rather than an async generator: `return()` on a generator suspended
 * in an `await` waits for that await to settle, so a client leaving while no event comes would
 * never release its upstream.
 */
export function createSubscriberQueue({
  maxBytes,
  transportBytes,
  onOverflow,
  onClose,
  send,
}: {
  maxBytes: number;
  /** Bytes the transport holds but has not yet handed to the kernel (ws bufferedAmount). */
  transportBytes: () => number;
  onOverflow: () => void;
  /** Called once when the iterator ends for any reason (client left, upstream ended, overflow). */
  onClose: () => void;
  /** Writes one result to the transport now; see above. */
  send?: (event: SharedResult) => void;
}) {
  const items: { result: ExecutionResult; bytes: number }[] = [];
  let queuedBytes = 0;
  let ended = false;
  let closed = false;
  let waiting: ((value: IteratorResult<ExecutionResult>) => void) | undefined;
  /** The reader has a result from here that it may not have written yet (until its next `next`). */
  let handedOut = false;

  const close = () => {
    if (closed) return;
    closed = true;
    ended = true;
    items.length = 0;
    queuedBytes = 0;
    onClose();
  };

  const flush = () => {
    if (!waiting) return;
    const item = items.shift();
    if (item) {
      queuedBytes -= item.bytes;
      const resolve = waiting;
      waiting = undefined;
      handedOut = true;
      resolve({ value: item.result, done: false });
    } else if (ended) {
      const resolve = waiting;
      waiting = undefined;
      close();
      resolve({ value: undefined, done: true });
    }
  };

  const subscriber: Subscriber = {
    deliver(event) {
      if (ended) return;
      const { result, bytes } = event;
      if (send && items.length === 0 && !handedOut && transportBytes() === 0) {
        send(event);
        return;
      }
      const pending = queuedBytes + transportBytes();
      if (pending > 0 && pending + bytes > maxBytes) {
        ended = true;
        close();
        flush();
        onOverflow();
        return;
      }
      items.push({ result, bytes });
      queuedBytes += bytes;
      flush();
    },
    end(final) {
      if (ended) return;
      if (final) items.push({ result: final, bytes: 0 });
      ended = true;
      flush();
    },
  };

  const iterator: AsyncIterableIterator<ExecutionResult> & {
    return(): Promise<IteratorResult<ExecutionResult>>;
    throw(error: unknown): Promise<IteratorResult<ExecutionResult>>;
  } = {
    [Symbol.asyncIterator]() {
      return iterator;
    },
    next() {
      handedOut = false;
      if (closed) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
        flush();
      });
    },
    return() {
      close();
      const resolve = waiting;
      waiting = undefined;
      resolve?.({ value: undefined, done: true });
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(error: unknown) {
      close();
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    },
  };

  return { subscriber, iterator };
}
