/**
 * In-process fan-out for GraphQL subscriptions: `publish` hands each event to every open
 * subscription whose filter accepts it; each subscription is an AsyncIterator, which is what a
 * `Subscription` field's `subscribe` resolver returns.
 *
 * Hand-written rather than an async generator: a generator suspended on `await` cannot be
 * `return()`ed until its next event arrives, so an unsubscribed client would hold its listener
 * (and memory) for as long as nothing happens. Here `return()` unsubscribes at once.
 */
export function createEventHub<T>() {
  const subscribers = new Set<{ push(event: T): void; end(): void }>();
  let closed = false;

  return {
    publish(event: T): void {
      for (const subscriber of [...subscribers]) subscriber.push(event);
    },

    /** Events from now on that `accept` lets through, buffered until the consumer asks. */
    subscribe(accept: (event: T) => boolean = () => true): AsyncIterableIterator<T> {
      const buffered: T[] = [];
      const waiting: ((result: IteratorResult<T>) => void)[] = [];
      let done = closed;
      const finish = (): IteratorResult<T> => {
        done = true;
        subscribers.delete(subscriber);
        buffered.length = 0;
        for (const resolve of waiting.splice(0)) resolve({ done: true, value: undefined });
        return { done: true, value: undefined };
      };
      const subscriber = {
        push(event: T) {
          if (done || !accept(event)) return;
          const resolve = waiting.shift();
          if (resolve) resolve({ done: false, value: event });
          else buffered.push(event);
        },
        end: finish,
      };
      if (!done) subscribers.add(subscriber);
      return {
        [Symbol.asyncIterator]() {
          return this;
        },
        next() {
          if (buffered.length > 0) return Promise.resolve({ done: false, value: buffered.shift()! });
          if (done) return Promise.resolve({ done: true, value: undefined });
          return new Promise((resolve) => waiting.push(resolve));
        },
        return() {
          return Promise.resolve(finish());
        },
        throw(error: unknown) {
          finish();
          return Promise.reject(error instanceof Error ? error : new Error(String(error)));
        },
      };
    },

    /** Open subscriptions (so producers can skip work nobody would see). */
    get size(): number {
      return subscribers.size;
    },

    /** Ends every subscription (their clients get `complete`); later ones end at once. */
    close(): void {
      closed = true;
      for (const subscriber of [...subscribers]) subscriber.end();
    },
  };
}
export type EventHub<T> = ReturnType<typeof createEventHub<T>>;
