import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../lib/auth/tokens.ts';
import type { StreamMessage } from '../lib/messaging/eventStream.ts';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, expectCode, logIn, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import {
  connectToSubgraph,
  signCredential,
  subscribe,
  type Subscription,
} from './support/subgraphSubscriptions.ts';

interface Totals {
  totalOrders: number;
  confirmedOrders: number;
  cancelledOrders: number;
  revenueCents: number;
}
interface Metrics extends Totals {
  successRate: number;
  averageOrderValueCents: number;
  revenueByDay: { day: string; revenueCents: number; orders: number }[];
  topProducts: { product: { id: string; name: string }; unitsSold: number; revenueCents: number }[];
}

const TOTALS = 'totalOrders confirmedOrders cancelledOrders revenueCents';
const METRICS = `${TOTALS} successRate averageOrderValueCents
  revenueByDay(days: 7) { day revenueCents orders }
  topProducts(limit: 5) { product { id name } unitsSold revenueCents }`;
const METRICS_UPDATED = `subscription { salesMetricsUpdated { ${TOTALS} } }`;

let system: TestSystem;
let adminToken: string;
let customer: Awaited<ReturnType<typeof signUp>>;
let widget: { id: string };
let scarce: { id: string };
let adminCredential: string;
const clients: Client[] = [];

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  customer = await signUp(system, 'Shopper');
  widget = await createProduct(system, adminToken, { name: 'Widget', priceCents: 1_250, stock: 1_000 });
  scarce = await createProduct(system, adminToken, { name: 'Scarce', priceCents: 5_000, stock: 1 });
  adminCredential = await signCredential(system, { id: randomUUID(), role: Role.ADMIN });
}, 60_000);
afterAll(async () => {
  for (const client of clients) await client.dispose();
  await system?.stop();
});

function subgraphClient(url: string, credential: string | undefined): Client {
  const client = connectToSubgraph(url, credential);
  clients.push(client);
  return client;
}

async function placeOrder(items: { productId: string; quantity: number }[], paymentToken: string) {
  const response = await system.graphql<{ placeOrder: { id: string; status: string } }>(
    'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }',
    { input: { items, paymentToken } },
    customer.token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.placeOrder;
}

/** Confirmed, declined and out-of-stock orders, and a few quantities. */
async function placeMixedOrders() {
  await placeOrder([{ productId: widget.id, quantity: 2 }], 'tok_visa');
  await placeOrder([{ productId: widget.id, quantity: 1 }], 'tok_declined');
  await placeOrder([{ productId: scarce.id, quantity: 3 }], 'tok_visa'); // insufficient stock
  await placeOrder([{ productId: widget.id, quantity: 3 }], 'tok_visa');
  await placeOrder([{ productId: widget.id, quantity: 1 }], 'tok_insufficient_funds');
}

/**
 * The orders database's own figures, for the orders that went through the saga (the demo orders
 * seeded straight into the table never were on order-events). Waits until no saga is running.
 */
async function ordersDatabaseTotals(): Promise<Totals> {
  const [row] = await eventually(
    () =>
      system.subgraphs.orders.db.query<{
        total: number;
        confirmed: number;
        cancelled: number;
        revenue: string;
        pending: number;
      }>(
        `SELECT count(*)::int AS total,
                count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed,
                count(*) FILTER (WHERE status = 'CANCELLED')::int AS cancelled,
                count(*) FILTER (WHERE status = 'PENDING')::int AS pending,
                COALESCE(sum(total_cents) FILTER (WHERE status = 'CONFIRMED'), 0)::bigint AS revenue
         FROM orders WHERE event_version > 0`,
      ),
    (rows) => rows[0]?.pending === 0,
  );
  return {
    totalOrders: row!.total,
    confirmedOrders: row!.confirmed,
    cancelledOrders: row!.cancelled,
    revenueCents: Number(row!.revenue),
  };
}

async function salesMetrics(token = adminToken) {
  return system.graphql<{ salesMetrics: Metrics }>(`{ salesMetrics { ${METRICS} } }`, {}, token);
}

const totalsOf = (m: Totals): Totals => ({
  totalOrders: m.totalOrders,
  confirmedOrders: m.confirmedOrders,
  cancelledOrders: m.cancelledOrders,
  revenueCents: m.revenueCents,
});

const lastPushed = (subscription: Subscription<{ salesMetricsUpdated: Totals }>) =>
  subscription.values.at(-1)?.salesMetricsUpdated;

/** Order events a replica's consumer applied so far, from its /metrics (`events_consumed_total`). */
async function eventsApplied(subgraphUrl: string): Promise<number> {
  const text = await fetch(new URL('/metrics', subgraphUrl)).then((r) => r.text());
  const line = text
    .split('\n')
    .find(
      (l) =>
        l.startsWith('events_consumed_total{') &&
        l.includes('consumer="analytics"') &&
        l.includes('outcome="applied"'),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** Every message on order-events so far, read through the event-stream port by a group of its own. */
async function allOrderEvents(): Promise<StreamMessage[]> {
  const [{ count }] = (await system.subgraphs.orders.db.query<{ count: number }>(
    `SELECT count(*)::int AS count FROM outbox WHERE topic = 'order-events'`,
  )) as [{ count: number }];
  const messages: StreamMessage[] = [];
  const reader = await system.stream.subscribe({
    groupId: `replay-${randomUUID()}`,
    topics: ['order-events'],
    handle: async (message) => {
      messages.push(message);
    },
  });
  try {
    await eventually(
      async () => messages.length,
      (seen) => seen >= count,
    );
  } finally {
    await reader.stop();
  }
  return messages;
}

describe('analytics: sales metrics from order-events', () => {
  it('after confirmed, declined and out-of-stock orders, the metrics equal the orders database', async () => {
    const pushed = subscribe<{ salesMetricsUpdated: Totals }>(
      subgraphClient(system.subgraphs.analytics.url, await signCredential(system, null)),
      METRICS_UPDATED,
      {},
      adminCredential,
    );
    await placeMixedOrders();
    const expected = await ordersDatabaseTotals();
    expect(expected.confirmedOrders).toBe(2);
    expect(expected.cancelledOrders).toBe(3);

    const metrics = (
      await eventually(
        salesMetrics,
        (r) => JSON.stringify(totalsOf(r.data!.salesMetrics)) === JSON.stringify(expected),
      )
    ).data!.salesMetrics;
    expect(metrics.successRate).toBeCloseTo(2 / 5);
    expect(metrics.averageOrderValueCents).toBe(Math.round(expected.revenueCents / 2));
    expect(metrics.revenueByDay).toHaveLength(7);
    expect(metrics.revenueByDay.reduce((sum, d) => sum + d.revenueCents, 0)).toBe(expected.revenueCents);
    expect(metrics.revenueByDay.reduce((sum, d) => sum + d.orders, 0)).toBe(2);
    // The product comes from the products subgraph, through the gateway.
    expect(metrics.topProducts).toEqual([
      { product: { id: widget.id, name: 'Widget' }, unitsSold: 5, revenueCents: 5 * 1_250 },
    ]);

    await eventually(
      async () => lastPushed(pushed),
      (last) => JSON.stringify(last) === JSON.stringify(expected),
    );
    pushed.unsubscribe();
  });

  it('a new subscription gets the current figures at once, then the figures after each change', async () => {
    const expected = await ordersDatabaseTotals();
    const current = await eventually(
      async () => totalsOf((await salesMetrics()).data!.salesMetrics),
      (totals) => JSON.stringify(totals) === JSON.stringify(expected),
    );
    const pushed = subscribe<{ salesMetricsUpdated: Totals }>(
      subgraphClient(system.subgraphs.analytics.url, await signCredential(system, null)),
      METRICS_UPDATED,
      {},
      adminCredential,
    );
    // No order placed: these are the figures as they stand.
    await eventually(
      async () => pushed.values.length,
      (n) => n === 1,
    );
    expect(lastPushed(pushed)).toEqual(current);

    await placeOrder([{ productId: widget.id, quantity: 2 }], 'tok_visa');
    const after = await ordersDatabaseTotals();
    await eventually(
      async () => lastPushed(pushed),
      (last) => JSON.stringify(last) === JSON.stringify(after),
    );
    expect(pushed.errors).toEqual([]);
    pushed.unsubscribe();
  });

  it('every event delivered a second time, stale ones after newer ones, changes nothing', async () => {
    const messages = await allOrderEvents();
    expect(messages.length).toBeGreaterThan(0);
    await system.stream.publish(
      'order-events',
      messages.map(({ key, value, headers }) => ({ key, value, headers })),
    );
    // The consumer reads each partition in order: once it has applied an order placed after the
    // replay on every partition the replay touched, it has seen every duplicate.
    const replayed = new Set(messages.map((m) => m.partition));
    const fresh = new Set<number>();
    const reader = await system.stream.subscribe({
      groupId: `after-replay-${randomUUID()}`,
      topics: ['order-events'],
      fromBeginning: false,
      handle: async (message) => {
        if (!messages.some((m) => m.value === message.value)) fresh.add(message.partition);
      },
    });
    try {
      await eventually(
        async () => {
          if (![...replayed].every((p) => fresh.has(p))) {
            await placeOrder([{ productId: widget.id, quantity: 1 }], 'tok_visa');
          }
          return [...replayed].every((p) => fresh.has(p));
        },
        Boolean,
        { intervalMs: 200 },
      );
    } finally {
      await reader.stop();
    }
    const expected = await ordersDatabaseTotals();
    await eventually(
      salesMetrics,
      (r) => JSON.stringify(totalsOf(r.data!.salesMetrics)) === JSON.stringify(expected),
    );
  });

  it("with two replicas splitting the partitions, each applies part of the events and both replicas' subscribers see the global metrics", async () => {
    const second = await system.startReplica('analytics');
    const replicas = [system.subgraphs.analytics.url, second.url];
    const connection = await signCredential(system, null);
    const [onFirst, onSecond] = replicas.map((url) =>
      subscribe<{ salesMetricsUpdated: Totals }>(
        subgraphClient(url, connection),
        METRICS_UPDATED,
        {},
        adminCredential,
      ),
    ) as [Subscription<{ salesMetricsUpdated: Totals }>, Subscription<{ salesMetricsUpdated: Totals }>];
    // The current figures at once: from then on no change can be missed.
    await eventually(
      async () => [onFirst.values.length, onSecond.values.length],
      ([a, b]) => a! > 0 && b! > 0,
    );

    // Orders are keyed by id, so they spread over the partitions; each replica owns some of
    // them (once the group has rebalanced) and applies only what lands there.
    const before = await Promise.all(replicas.map(eventsApplied));
    await eventually(
      async () => {
        await placeMixedOrders();
        const after = await Promise.all(replicas.map(eventsApplied));
        return after.map((count, i) => count - before[i]!);
      },
      (applied) => applied.every((n) => n > 0),
      { intervalMs: 200, timeoutMs: 60_000 },
    );

    const expected = await ordersDatabaseTotals();
    for (const subscription of [onFirst, onSecond]) {
      await eventually(
        async () => lastPushed(subscription),
        (last) => JSON.stringify(last) === JSON.stringify(expected),
      );
    }
    expect(onFirst.errors).toEqual([]);
    expect(onSecond.errors).toEqual([]);
    onFirst.unsubscribe();
    onSecond.unsubscribe();
  });

  it('salesMetrics and salesMetricsUpdated are for an ADMIN only', async () => {
    expectCode(await salesMetrics(customer.token), 'FORBIDDEN');
    expectCode(await system.graphql(`{ salesMetrics { totalOrders } }`), 'UNAUTHENTICATED');

    const client = subgraphClient(system.subgraphs.analytics.url, await signCredential(system, null));
    const customerSubscription = subscribe(
      client,
      METRICS_UPDATED,
      {},
      await signCredential(system, { id: customer.id, role: Role.CUSTOMER }),
    );
    await customerSubscription.ended;
    expect(customerSubscription.errors.map((e) => e.extensions?.['code'])).toEqual(['FORBIDDEN']);

    const anonymous = subscribe(client, METRICS_UPDATED);
    await anonymous.ended;
    expect(anonymous.errors.map((e) => e.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);

    const unsigned = subscribe(subgraphClient(system.subgraphs.analytics.url, undefined), METRICS_UPDATED);
    await unsigned.ended;
    expect(unsigned.errors).toEqual([{ closeCode: 4403 }]);

    const forged = subscribe(client, METRICS_UPDATED, {}, 'not-a-credential');
    await forged.ended;
    expect(forged.errors.map((e) => e.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
  });
});
