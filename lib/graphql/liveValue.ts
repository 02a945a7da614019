import type { ExecutionResult, FormattedExecutionResult } from 'graphql';

/**
 * A subscription whose every event is the whole current value, the first one sent at once
 * (`salesMetricsUpdated`), as opposed to one whose events are changes (`orderStatusChanged`).
 *
 * The difference matters to the gateway, which shares one upstream subscription between
 * identical subscribers: a subscriber joining a shared live value must be handed the latest
 * event at once (the upstream sent its "at once" event long ago, to the first subscriber), while
 * a subscriber joining a stream of changes must not be handed an old change. The subgraph marks
 * each event of a live value with this `extensions` entry (internal: between a subgraph and the
 * gateway, never shown to clients), so the gateway knows which events it may replay.
 */
export const LIVE_VALUE_EXTENSION = 'x-live-value';

const LIVE_VALUE = Symbol('liveValue');

/** Marks the event stream a `subscribe` resolver returns as a live value. */
export function liveValue<T>(events: AsyncIterableIterator<T>): AsyncIterableIterator<T> {
  return Object.assign(events, { [LIVE_VALUE]: true });
}

/** True for an event stream marked with `liveValue`. */
export function isLiveValue(events: unknown): boolean {
  return typeof events === 'object' && events !== null && LIVE_VALUE in events;
}

/** The result as sent for an event of a live value. */
export function markLiveValueEvent(result: ExecutionResult): ExecutionResult {
  return { ...result, extensions: { ...result.extensions, [LIVE_VALUE_EXTENSION]: true } };
}

/** True for an event a subgraph marked as (a whole) live value. */
export function isLiveValueEvent(result: FormattedExecutionResult): boolean {
  return result.extensions?.[LIVE_VALUE_EXTENSION] === true;
}
