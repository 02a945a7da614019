import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

async function settle(id: string, token: string, timeoutMs = 60_000): Promise<Order> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const response = await system.graphql<{ order: Order }>(ORDER, { id }, token);
    const order = response.data?.order;
    if (order && order.status !== 'PENDING') return order;
    if (Date.now() > deadline) throw new Error(`order ${id} still PENDING`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stockOf(id: string) {
  const response = await system.graphql<{ product: { stock: number; available: number } }>(
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

describe('orders under load', () => {
  it('50 concurrent orders for 10 units: exactly 10 sold, nobody charged without stock', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 700 });
    const buyers = await Promise.all(Array.from({ length: 5 }, (_, i) => signUp(system, `Rush${i}`)));
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
            return settle(response.data!.placeOrder.id, buyer.token);
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
  }, 120_000);

  it('after a mixed run of 200 orders, stock sold = confirmed quantities and money kept = confirmed revenue', async () => {
    const products = await Promise.all(
      [40, 60, 80].map((stock, i) => createProduct(system, adminToken, { stock, priceCents: 250 * (i + 1) })),
    );
    const buyers = await Promise.all(Array.from({ length: 8 }, (_, i) => signUp(system, `Mix${i}`)));
    const tokens = [
      'tok_visa',
      'tok_visa',
      'tok_visa',
      'tok_declined',
      'tok_insufficient_funds',
      'tok_flaky',
    ];
    const tasks = Array.from({ length: 200 }, (_, i) => async () => {
      const buyer = buyers[i % buyers.length]!;
      const product = products[i % products.length]!;
      const response = await system.graphql<{ placeOrder: Order }>(
        PLACE,
        {
          input: {
            items: [{ productId: product.id, quantity: 1 + (i % 3) }],
            paymentToken: tokens[i % tokens.length],
          },
        },
        buyer.token,
      );
      expect(response.errors).toBeUndefined();
      return settle(response.data!.placeOrder.id, buyer.token);
    });
    const orders = await inBatches(tasks, 20);

    const confirmed = orders.filter((order) => order.status === 'CONFIRMED');
    expect(confirmed.length).toBeGreaterThan(0);
    expect(orders.filter((order) => order.status === 'CANCELLED').length).toBeGreaterThan(0);
    expect(orders.every((order) => order.status === 'CONFIRMED' || order.status === 'CANCELLED')).toBe(true);

    for (const [index, product] of products.entries()) {
      const initial = [40, 60, 80][index]!;
      const sold = confirmed
        .flatMap((order) => order.items)
        .filter((item) => item.product.id === product.id)
        .reduce((sum, item) => sum + item.quantity, 0);
      const { stock, available } = await stockOf(product.id);
      expect(initial - stock).toBe(sold);
      expect(available).toBe(stock); // nothing left reserved
    }

    const kept = orders.reduce(
      (sum, order) =>
        sum +
        (order.payment && (order.payment.status === 'CAPTURED' || order.payment.status === 'REFUNDED')
          ? order.payment.amountCents - order.payment.refundedCents
          : 0),
      0,
    );
    const revenue = confirmed.reduce((sum, order) => sum + order.totalCents, 0);
    expect(kept).toBe(revenue);
  }, 240_000);
});
