import { createSourceEventStream, execute, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { isLiveValue, markLiveValueEvent } from './liveValue.ts';

/**
 * graphql-js' `subscribe`, for a subgraph's graphql-ws server, with two differences:
 * - graphql-js runs every event with the subscription's one context, but contexts hold
 *   request-scoped DataLoaders: their caches would serve the first event's rows to all later
 *   ones. Each event gets `contextForEvent()` instead (a new context for the same caller);
 * - the events of a live value (./liveValue.ts) are marked as such for the gateway.
 */
export async function subscribeToEvents(
  args: ExecutionArgs,
  { contextForEvent = () => args.contextValue }: { contextForEvent?: () => unknown } = {},
): Promise<AsyncGenerator<ExecutionResult, void, unknown> | ExecutionResult> {
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream;
  const source = stream[Symbol.asyncIterator]();
  const live = isLiveValue(stream);
  const mapped: AsyncGenerator<ExecutionResult, void, unknown> = {
    [Symbol.asyncIterator]() {
      return mapped;
    },
    async next() {
      const event = await source.next();
      if (event.done) return { done: true, value: undefined };
      const value = await execute({ ...args, rootValue: event.value, contextValue: contextForEvent() });
      return { done: false, value: live ? markLiveValueEvent(value) : value };
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
