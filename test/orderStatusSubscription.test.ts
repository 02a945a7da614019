import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../lib/auth/tokens.ts';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import {
  connectToSubgraph,
  signCredential,
  subscribe,
  type Subscription,
} from './support/subgraphSubscriptions.ts';

interface StatusChange {
  orderStatusChanged: { id: string; status: string; failureReason: string | null; totalCents: number };
}

const STATUS_CHANGED = `subscription($orderId: ID) {
  orderStatusChanged(orderId: $orderId) { id status failureReason totalCents }
}`;

let system: TestSystem;
let client: Client;
let productId: string;
let alice: Awaited<ReturnType<typeof signUp>>;
let bob: Awaited<ReturnType<typeof signUp>>;
const asUser = (user: { id: string }) => signCredential(system, { id: user.id, role: Role.CUSTOMER });

beforeAll(async () => {
  system = await startTestSystem();
  const adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  productId = (await createProduct(system, adminToken, { priceCents: 700, stock: 1_000 })).id;
  alice = await signUp(system, 'Alice');
  bob = await signUp(system, 'Bob');
  client = connectToSubgraph(system.subgraphs.orders.url, await signCredential(system, null));
}, 60_000);
afterAll(async () => {
  await client?.dispose();
  await system?.stop();
});

async function placeOrder(token: string, paymentToken: string): Promise<string> {
  const response = await system.graphql<{ placeOrder: { id: string } }>(
    'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }',
    { input: { items: [{ productId, quantity: 1 }], paymentToken } },
    token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.placeOrder.id;
}

/**
 * A subscription is active once the server has run its subscribe resolver, which no message
 * acknowledges: place orders until one of them shows up, after which nothing can be missed.
 */
async function untilActive(subscription: Subscription<StatusChange>, token: string): Promise<void> {
  await eventually(
    async () => {
      if (subscription.values.length === 0) await placeOrder(token, 'tok_visa');
      return subscription.values.length;
    },
    (count) => count > 0,
    { intervalMs: 500 },
  );
}

const statusesOf = (subscription: Subscription<StatusChange>, orderId: string) =>
  subscription.values.map((v) => v.orderStatusChanged).filter((order) => order.id === orderId);

describe('Subscription.orderStatusChanged', () => {
  it("delivers each of the user's orders PENDING then CONFIRMED or CANCELLED, in order", async () => {
    const subscription = subscribe<StatusChange>(client, STATUS_CHANGED, {}, await asUser(alice));
    await untilActive(subscription, alice.token);

    const confirmed = await placeOrder(alice.token, 'tok_visa');
    const declined = await placeOrder(alice.token, 'tok_declined');
    await eventually(
      async () => [statusesOf(subscription, confirmed), statusesOf(subscription, declined)],
      ([a, b]) => a!.length >= 2 && b!.length >= 2,
    );
    subscription.unsubscribe();

    expect(statusesOf(subscription, confirmed).map((o) => o.status)).toEqual(['PENDING', 'CONFIRMED']);
    const cancelled = statusesOf(subscription, declined);
    expect(cancelled.map((o) => o.status)).toEqual(['PENDING', 'CANCELLED']);
    expect(cancelled[0]!.failureReason).toBeNull();
    expect(cancelled[1]!.failureReason).toMatch(/declined/i);
    expect(cancelled[1]!.totalCents).toBe(700);
    expect(subscription.errors).toEqual([]);
  });

  it("shows a customer only their own orders; an ADMIN sees everyone's", async () => {
    const bobs = subscribe<StatusChange>(client, STATUS_CHANGED, {}, await asUser(bob));
    const admins = subscribe<StatusChange>(
      client,
      STATUS_CHANGED,
      {},
      await signCredential(system, { id: 'admin', role: Role.ADMIN }),
    );
    await untilActive(bobs, bob.token);
    await untilActive(admins, bob.token);

    const alicesOrder = await placeOrder(alice.token, 'tok_visa');
    const bobsOrder = await placeOrder(bob.token, 'tok_visa');
    await eventually(
      async () => [statusesOf(admins, alicesOrder).length, statusesOf(bobs, bobsOrder).length],
      ([a, b]) => a === 2 && b === 2,
    );
    bobs.unsubscribe();
    admins.unsubscribe();
    expect(statusesOf(bobs, alicesOrder)).toEqual([]);
    expect(statusesOf(admins, bobsOrder).map((o) => o.status)).toEqual(['PENDING', 'CONFIRMED']);
  });

  it("refuses another user's order with FORBIDDEN", async () => {
    const alicesOrder = await placeOrder(alice.token, 'tok_visa');
    const refused = subscribe<StatusChange>(
      client,
      STATUS_CHANGED,
      { orderId: alicesOrder },
      await asUser(bob),
    );
    await refused.ended;
    expect(refused.errors.map((e) => e.extensions?.['code'])).toEqual(['FORBIDDEN']);
    expect(refused.values).toEqual([]);
  });

  it('refuses a caller without a signed credential, and an anonymous operation', async () => {
    const unsigned = connectToSubgraph(system.subgraphs.orders.url, undefined);
    const refused = subscribe<StatusChange>(unsigned, STATUS_CHANGED);
    await refused.ended;
    expect(refused.errors).toEqual([{ closeCode: 4403 }]);
    await unsigned.dispose();

    const anonymous = subscribe<StatusChange>(client, STATUS_CHANGED);
    await anonymous.ended;
    expect(anonymous.errors.map((e) => e.extensions?.['code'])).toEqual(['UNAUTHENTICATED']);
  });
});
