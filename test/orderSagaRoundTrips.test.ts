import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, recordOrderEvents, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

/**
 * Issue #7: the database round trips an order costs are its CPU cost (PostgreSQL's and the
 * services' own), so their number per order is pinned here. A count, never a timing: a change
 * that adds statements to the saga's path fails this test on any machine.
 */

// Work the services do on their own schedule, not because of the order: the outbox relay, the
// saga runner's lease round, the reservation sweeper. They may run while the order is placed.
const BACKGROUND = [
  /outbox_lease/,
  /FROM outbox\b/,
  /UPDATE outbox SET published_at/,
  /WHERE id = ANY\(\$1::uuid\[\]\) AND saga_owner/, // lease renewal
  /^\s*SELECT id FROM orders\s+WHERE saga_state IN/, // sagas to take over
  /FROM reservations WHERE status = 'HELD' AND expires_at <= now\(\)/, // sweeper
];

const PLACE = `mutation($input: PlaceOrderInput!) {
  placeOrder(input: $input) { id status createdAt saga { state steps { name status attempts } } }
}`;

let system: TestSystem;
let customer: { token: string; id: string };
let products: { id: string }[];
const orderEvents: EventEnvelope<{ placedAt: string; status: string }>[] = [];

beforeAll(async () => {
  // A lease round every 20 s: none is due while an order is placed.
  system = await startTestSystem({ ORDER_SAGA_LEASE_MS: '60000' });
  const adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  customer = await signUp(system, 'Counted');
  products = [
    await createProduct(system, adminToken, { stock: 100 }),
    await createProduct(system, adminToken, { stock: 100 }),
  ];
  await recordOrderEvents(system, orderEvents);
}, 60_000);
afterAll(() => system?.stop());

async function place() {
  const response = await system.graphql<{
    placeOrder: { id: string; status: string; createdAt: string; saga: { state: string } };
  }>(
    PLACE,
    {
      input: {
        items: products.map((product) => ({ productId: product.id, quantity: 2 })),
        paymentToken: 'tok_visa',
        idempotencyKey: randomUUID(),
      },
    },
    customer.token,
  );
  expect(response.errors).toBeUndefined();
  expect(response.data?.placeOrder).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' } });
  return response.data!.placeOrder;
}

describe('the database round trips of one order', () => {
  it('a confirmed order of two items: one statement to record it, one per saga transition, one per write in products and payments', async () => {
    await place(); // first use: connections, caches
    let order: Awaited<ReturnType<typeof place>> | undefined;
    const queries = await system.countQueries(async () => {
      order = await place();
    });
    const ofService = (service: string) =>
      queries.filter((q) => q.service === service && !BACKGROUND.some((pattern) => pattern.test(q.sql)));
    const orders = ofService('orders');
    // Before issue #7: 92 in orders (9 transactions: the order's insert, 8 step transitions),
    // 20 in products, 7 in payments. Now orders: the idempotency key's lookup, the order with its
    // items, steps and OrderPlaced in one statement, 5 transitions (each step's success goes with
    // the next step's first attempt; the last one gives the lease up), then the response's 2 reads.
    expect(orders.filter((q) => /^\s*WITH held AS/.test(q.sql))).toHaveLength(5);
    expect(orders.filter((q) => q.sql === 'BEGIN')).toHaveLength(0);
    expect(orders.length).toBeLessThanOrEqual(9);
    // products (11 before): pricing, then reserve and commit, one statement each.
    expect(ofService('products').length).toBeLessThanOrEqual(3);
    // payments (7 before: two transactions): the charge's key claimed before the provider is
    // called, then its outcome stored with the key closed, one statement each.
    expect(ofService('payments').length).toBeLessThanOrEqual(2);
    expect(
      [...ofService('products'), ...ofService('payments')].filter((q) => q.sql === 'BEGIN'),
    ).toHaveLength(0);

    // What the fewer statements still write: one event per transition, versions in a row, each
    // with the order's creation time as the API shows it.
    const events = await eventually(
      async () => orderEvents.filter((event) => event.aggregateId === order!.id),
      (list) => list.some((event) => event.eventType === 'OrderConfirmed'),
    );
    expect(events.map((event) => [event.eventType, event.version])).toEqual([
      ['OrderPlaced', 1],
      ['StockReserved', 2],
      ['PaymentCaptured', 3],
      ['OrderConfirmed', 4],
    ]);
    expect(events.map((event) => event.data.placedAt)).toEqual(events.map(() => order!.createdAt));
    expect(events.map((event) => event.data.status)).toEqual(['PENDING', 'PENDING', 'PENDING', 'CONFIRMED']);
  }, 30_000);
});
