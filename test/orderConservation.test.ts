import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  PRODUCTION_PAYMENT_TIMING,
  providerChargeKey,
} from '../subgraphs/payments/src/createPaymentProcessing.ts';
import { createTestPaymentProvider } from '../subgraphs/payments/src/createTestPaymentProvider.ts';
import { ADMIN, createProduct, logIn, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

/**
 * Orders under load, checked by conservation rather than by example: whatever the mix of
 * outcomes, units sold match confirmed quantities and money kept matches confirmed revenue.
 */
interface Order {
  id: string;
  status: string;
  failureReason: string | null;
  totalCents: number;
  items: { product: { id: string }; quantity: number }[];
  payment: { status: string; amountCents: number; refundedCents: number } | null;
}
const ORDER_FIELDS = `id status failureReason totalCents items { product { id } quantity }
  payment { status amountCents refundedCents }`;
const PLACE = `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER_FIELDS} } }`;
const ORDER = `query($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;

let system: TestSystem;
let adminToken: string;

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
}, 60_000);
afterAll(() => system?.stop());

async function settle(on: TestSystem, id: string, token: string, timeoutMs = 60_000): Promise<Order> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await on.graphql<{ order: Order }>(ORDER, { id }, token);
    const order = response.data?.order;
    if (order && order.status !== 'PENDING') return order;
    if (Date.now() > deadline) throw new Error(`order ${id} still PENDING`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stockOf(id: string, on = system) {
  const response = await on.graphql<{ product: { stock: number; available: number } }>(
    'query($id: ID!) { product(id: $id) { stock available } }',
    { id },
  );
  return response.data!.product;
}

/** Runs `tasks` with at most `limit` in flight. */
async function inBatches<T>(tasks: (() => Promise<T>)[], limit: number): Promise<T[]> {
  const results: T[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < tasks.length) {
        const index = next++;
        results[index] = await tasks[index]!();
      }
    }),
  );
  return results;
}

/**
 * Reads a product's stock over and over until stopped: what any client could have seen while
 * orders were running.
 */
function sampleStock(productId: string) {
  const samples: { stock: number; available: number }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) samples.push(await stockOf(productId));
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return samples;
    },
  };
}

describe('orders under load', () => {
  it('50 concurrent orders for 10 units: exactly 10 sold, nobody charged without stock, available never negative', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 700 });
    const buyers = await Promise.all(Array.from({ length: 5 }, (_, i) => signUp(system, `Rush${i}`)));
    const sampler = sampleStock(product.id);
    const placed = await Promise.all(
      Array.from({ length: 50 }, (_, i) => {
        const buyer = buyers[i % buyers.length]!;
        return system
          .graphql<{ placeOrder: Order }>(
            PLACE,
            { input: { items: [{ productId: product.id, quantity: 1 }], paymentToken: 'tok_visa' } },
            buyer.token,
          )
          .then((response) => {
            expect(response.errors).toBeUndefined();
            return settle(system, response.data!.placeOrder.id, buyer.token);
          });
      }),
    );
    const confirmed = placed.filter((order) => order.status === 'CONFIRMED');
    const cancelled = placed.filter((order) => order.status === 'CANCELLED');
    expect(confirmed).toHaveLength(10);
    expect(cancelled).toHaveLength(40);
    for (const order of cancelled) {
      expect(order.failureReason).toMatch(/stock/i);
      expect(order.payment).toBeNull(); // never charged
    }
    expect(await stockOf(product.id)).toEqual({ stock: 0, available: 0 });
    const samples = await sampler.stop();
    expect(samples.length).toBeGreaterThan(10);
    // Units are held at reservation and sold at commit: never more promised than there are.
    const impossible = samples.filter(
      ({ stock, available }) => available < 0 || available > stock || stock < 0 || stock > 10,
    );
    expect(impossible).toEqual([]);
    expect(Math.min(...samples.map((sample) => sample.available))).toBe(0);
  }, 120_000);
});

describe('a mixed run, with every token and reservations that can expire', () => {
  // Shorter than tok_timeout_captured's charge (a 3 s reply timeout, then a retry): those orders
  // are captured, find their reservation expired at the commit, and are refunded.
  const RESERVATION_TTL_SECONDS = 3;
  const processor = createTestPaymentProvider({ replyTimeoutMs: PRODUCTION_PAYMENT_TIMING.replyTimeoutMs });
  let mixed: TestSystem;
  beforeAll(async () => {
    mixed = await startTestSystem(
      { ORDER_RESERVATION_TTL_SECONDS: String(RESERVATION_TTL_SECONDS) },
      { paymentProvider: processor },
    );
  }, 60_000);
  afterAll(() => mixed?.stop());

  it('after 200 orders, stock sold = confirmed quantities and money captured − refunded = confirmed revenue', async () => {
    const admin = await logIn(mixed, ADMIN.email, ADMIN.password);
    const stocks = [40, 60, 80];
    const products = await Promise.all(
      stocks.map((stock, i) => createProduct(mixed, admin, { stock, priceCents: 250 * (i + 1) })),
    );
    const buyers = await Promise.all(Array.from({ length: 8 }, (_, i) => signUp(mixed, `Mix${i}`)));
    const tokens = [
      'tok_visa',
      'tok_visa',
      'tok_visa',
      'tok_declined',
      'tok_insufficient_funds',
      'tok_flaky',
      'tok_timeout',
      'tok_timeout_captured',
    ];
    const tasks = Array.from({ length: 200 }, (_, i) => async () => {
      const buyer = buyers[i % buyers.length]!;
      const product = products[i % products.length]!;
      const token = tokens[i % tokens.length]!;
      const response = await mixed.graphql<{ placeOrder: Order }>(
        PLACE,
        { input: { items: [{ productId: product.id, quantity: 1 + (i % 3) }], paymentToken: token } },
        buyer.token,
      );
      expect(response.errors).toBeUndefined();
      return { token, order: await settle(mixed, response.data!.placeOrder.id, buyer.token) };
    });
    const results = await inBatches(tasks, 20);
    const orders = results.map((r) => r.order);
    const byToken = (token: string) => results.filter((r) => r.token === token).map((r) => r.order);

    const confirmed = orders.filter((order) => order.status === 'CONFIRMED');
    expect(confirmed.length).toBeGreaterThan(0);
    expect(orders.every((order) => order.status === 'CONFIRMED' || order.status === 'CANCELLED')).toBe(true);
    // Orders that found no stock were never charged; the others reached payments.
    const charged = (token: string) => byToken(token).filter((order) => order.payment !== null);
    for (const order of byToken('tok_timeout')) expect(order.status).toBe('CANCELLED');
    expect(charged('tok_timeout').map((order) => order.payment?.status)).toEqual(
      charged('tok_timeout').map(() => 'FAILED'),
    );
    // Captured, then refunded because the reservation had expired: the refund path, every time.
    expect(charged('tok_timeout_captured').length).toBeGreaterThan(0);
    for (const order of byToken('tok_timeout_captured')) expect(order.status).toBe('CANCELLED');
    for (const order of charged('tok_timeout_captured')) {
      expect(order.payment).toMatchObject({ status: 'REFUNDED', refundedCents: order.totalCents });
      expect(order.failureReason).toMatch(/EXPIRED/);
    }

    for (const [index, product] of products.entries()) {
      const sold = confirmed
        .flatMap((order) => order.items)
        .filter((item) => item.product.id === product.id)
        .reduce((sum, item) => sum + item.quantity, 0);
      const { stock, available } = await stockOf(product.id, mixed);
      expect(stocks[index]! - stock).toBe(sold);
      expect(available).toBe(stock); // nothing left reserved
    }

    // Money, as payments recorded it and as the card processor saw it.
    const revenue = confirmed.reduce((sum, order) => sum + order.totalCents, 0);
    const payments = orders.flatMap((order) => (order.payment ? [order.payment] : []));
    const captured = payments
      .filter((p) => p.status === 'CAPTURED' || p.status === 'REFUNDED')
      .reduce((sum, p) => sum + p.amountCents, 0);
    const refunded = payments.reduce((sum, p) => sum + p.refundedCents, 0);
    expect(refunded).toBeGreaterThan(0);
    expect(captured - refunded).toBe(revenue);
    const keys = new Set(orders.map((order) => providerChargeKey(`${order.id}:charge`)));
    const captures = processor.captures().filter((c) => keys.has(c.idempotencyKey));
    const chargeIds = new Set(captures.map((c) => c.chargeId));
    const refunds = processor.refunds().filter((r) => chargeIds.has(r.chargeId));
    expect(new Set(captures.map((c) => c.idempotencyKey)).size).toBe(captures.length); // none captured twice
    expect(new Set(refunds.map((r) => r.chargeId)).size).toBe(refunds.length); // none refunded twice
    expect(captures.reduce((sum, c) => sum + c.amountCents, 0)).toBe(captured);
    expect(refunds.reduce((sum, r) => sum + r.amountCents, 0)).toBe(refunded);
  }, 300_000);
});
