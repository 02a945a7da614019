import { describe, expect, it } from 'vitest';
import type { ServiceCredentials } from '../../../lib/auth/tokens.ts';
import { LIVE_VALUE_EXTENSION } from '../../../lib/graphql/liveValue.ts';
import { createLogger } from '../../../lib/logger.ts';
import { createSharedSubscriptions } from './createSharedSubscriptions.ts';
import type { SubgraphSockets, UpstreamSink } from './createSubgraphSockets.ts';
import type { SharedResult, Subscriber } from './createSubscriberQueue.ts';
import type { SubscriptionPlan } from './createSubscriptionPlanner.ts';

const plan = {
  generation: 1,
  primary: { kind: 'Fetch', serviceName: 'analytics', operation: 'subscription { n }', variableUsages: [] },
  endpoints: new Map([['analytics', { name: 'analytics', url: 'http://analytics.test/graphql' }]]),
} as unknown as SubscriptionPlan;

/** Shared subscriptions over one fake upstream whose events are their own result. */
function setup() {
  const upstream: { sink?: UpstreamSink; opened: number } = { opened: 0 };
  const sockets = {
    subscribe: (_request: unknown, sink: UpstreamSink) => {
      upstream.opened += 1;
      upstream.sink = sink;
      return () => {};
    },
  } as unknown as SubgraphSockets;
  const shared = createSharedSubscriptions({
    sockets,
    credentials: { sign: () => 'credential' } as unknown as ServiceCredentials,
    logger: createLogger({ level: 'silent', service: 'test' }),
    deliveriesPerTurn: 10,
    execute: async ({ event }) => ({ data: event.data ?? null }),
  });
  /** A subscriber recording the n of each event it is handed. */
  const subscriber = () => {
    const seen: number[] = [];
    const s: Subscriber & { seen: number[] } = {
      seen,
      deliver: (event: SharedResult) => void seen.push(event.result.data?.['n'] as number),
      end: () => {},
    };
    return s;
  };
  const join = (s: Subscriber) => shared.join({ key: 'k', plan, variables: {}, viewer: null }, s);
  const publish = (n: number, live = false) =>
    upstream.sink?.next({
      data: { n },
      ...(live && { extensions: { [LIVE_VALUE_EXTENSION]: true } }),
    });
  return { shared, upstream, subscriber, join, publish };
}

const settled = async () => {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
};

describe('shared subscriptions fanning out an event', () => {
  it('serve everyone from one upstream, each event to each subscriber once and in order', async () => {
    const { upstream, subscriber, join, publish } = setup();
    const subscribers = Array.from({ length: 35 }, subscriber);
    for (const s of subscribers) join(s);
    publish(1);
    publish(2);
    publish(3);
    await settled();
    expect(upstream.opened).toBe(1);
    for (const s of subscribers) expect(s.seen).toEqual([1, 2, 3]);
  });

  it('let the event loop in between slices of a large fan-out', async () => {
    const { subscriber, join, publish } = setup();
    const subscribers = Array.from({ length: 35 }, subscriber);
    for (const s of subscribers) join(s);
    let deliveredWhenOthersRan: number | undefined;
    publish(1);
    // Queued once the fan-out has begun: it runs before the fan-out ends, not after.
    await new Promise((resolve) => setImmediate(resolve));
    setImmediate(() => (deliveredWhenOthersRan = subscribers.filter((s) => s.seen.length > 0).length));
    await settled();
    expect(subscribers.every((s) => s.seen.length === 1)).toBe(true);
    expect(deliveredWhenOthersRan).toBeGreaterThan(0);
    expect(deliveredWhenOthersRan).toBeLessThan(35);
  });

  it('hand a live value to one who joins during a fan-out once, and nothing to one who left', async () => {
    const { subscriber, join, publish } = setup();
    const subscribers = Array.from({ length: 35 }, subscriber);
    const leaves = subscribers.map(join);
    publish(1, true);
    await new Promise((resolve) => setImmediate(resolve)); // the fan-out has begun, not ended
    const late = subscriber();
    join(late);
    leaves[34]!();
    await settled();
    expect(late.seen).toEqual([1]);
    expect(subscribers[34]!.seen).toEqual([]);
    expect(subscribers[0]!.seen).toEqual([1]);
  });
});
