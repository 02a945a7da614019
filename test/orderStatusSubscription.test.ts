import { randomUUID } from 'node:crypto';
import type { Client } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Role } from '../lib/auth/tokens.ts';
import type { StreamMessage } from '../lib/messaging/eventStream.ts';
import { PRODUCTION_PAYMENT_TIMING } from '../subgraphs/payments/src/createPaymentProcessing.ts';
import { createTestPaymentProvider } from '../subgraphs/payments/src/createTestPaymentProvider.ts';
import type { PaymentProvider } from '../subgraphs/payments/src/paymentProvider.ts';
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

/** Price of the product whose charges are held (see `holdCharges`), unlike any other here. */
const HELD_PRICE_CENTS = 900;

/**
 * The built-in test card processor, except that while `held` is set, charges of
 * HELD_PRICE_CENTS wait for it: a saga stays at CHARGE_PAYMENT as long as the test needs.
 */
const processor = createTestPaymentProvider({ replyTimeoutMs: PRODUCTION_PAYMENT_TIMING.replyTimeoutMs });
let held: Promise<void> | undefined;
const paymentProvider: PaymentProvider = {
  ...processor,
  async charge(request) {
    if (held && request.amountCents === HELD_PRICE_CENTS) {
      const gate = held;
      await new Promise<void>((resolve, reject) => {
        void gate.then(resolve);
        request.signal?.addEventListener('abort', () => reject(new Error('charge aborted')), { once: true });
      });
    }
    return processor.charge(request);
  },
};
function holdCharges(): () => void {
  let release!: () => void;
  held = new Promise((resolve) => (release = resolve));
  return () => {
    release();
    held = undefined;
  };
}

let system: TestSystem;
let client: Client;
let productId: string;
let heldProductId: string;
let alice: Awaited<ReturnType<typeof signUp>>;
let bob: Awaited<ReturnType<typeof signUp>>;
const asUser = (user: { id: string }) => signCredential(system, { id: user.id, role: Role.CUSTOMER });

beforeAll(async () => {
  // placeOrder answers at once (PENDING): a test can subscribe to an order while its saga runs.
  system = await startTestSystem({ ORDER_SAGA_WAIT_MS: '0' }, { paymentProvider });
  const adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  productId = (await createProduct(system, adminToken, { priceCents: 700, stock: 1_000 })).id;
  heldProductId = (await createProduct(system, adminToken, { priceCents: HELD_PRICE_CENTS, stock: 1_000 }))
    .id;
  alice = await signUp(system, 'Alice');
  bob = await signUp(system, 'Bob');
  client = connectToSubgraph(system.subgraphs.orders.url, await signCredential(system, null));
}, 60_000);
afterAll(async () => {
  await client?.dispose();
  await system?.stop();
});

async function placeOrder(token: string, paymentToken: string, product = productId): Promise<string> {
  const response = await system.graphql<{ placeOrder: { id: string } }>(
    'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }',
    { input: { items: [{ productId: product, quantity: 1 }], paymentToken } },
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

/** Subscriptions the orders subgraph is serving now (its /metrics), to know ours are live. */
async function runningSubscriptions(): Promise<number> {
  const text = await fetch(new URL('/metrics', system.subgraphs.orders.url)).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith('subgraph_subscriptions{'));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

/** The messages of one order on order-events so far, read by a group of its own. */
async function eventsOfOrder(orderId: string, eventType: string): Promise<StreamMessage[]> {
  const messages: StreamMessage[] = [];
  const reader = await system.stream.subscribe({
    groupId: `read-${randomUUID()}`,
    topics: ['order-events'],
    handle: async (message) => {
      if (message.key === orderId && message.value.includes(`"eventType":"${eventType}"`))
        messages.push(message);
    },
  });
  try {
    await eventually(
      async () => messages.length,
      (n) => n > 0,
    );
  } finally {
    await reader.stop();
  }
  return messages;
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
      async () => [
        statusesOf(admins, alicesOrder).length,
        statusesOf(admins, bobsOrder).length,
        statusesOf(bobs, bobsOrder).length,
      ],
      (counts) => counts.every((count) => count === 2),
    );
    bobs.unsubscribe();
    admins.unsubscribe();
    expect(statusesOf(bobs, alicesOrder)).toEqual([]);
    expect(statusesOf(admins, bobsOrder).map((o) => o.status)).toEqual(['PENDING', 'CONFIRMED']);
  });

  it("with orderId, the owner gets that order's changes only, in order, and no stale repeat", async () => {
    await eventually(runningSubscriptions, (n) => n === 0);
    const release = holdCharges();
    const all = subscribe<StatusChange>(client, STATUS_CHANGED, {}, await asUser(alice));
    await eventually(runningSubscriptions, (n) => n === 1);
    const order = await placeOrder(alice.token, 'tok_visa', heldProductId); // waits at CHARGE_PAYMENT
    // placeOrder returns before its OrderPlaced has come round through order-events (with Kafka,
    // the outbox relay and a consumer): subscribe to the one order only once it has.
    await eventually(
      async () => statusesOf(all, order).map((o) => o.status),
      (statuses) => statuses.includes('PENDING'),
    );
    const one = subscribe<StatusChange>(client, STATUS_CHANGED, { orderId: order }, await asUser(alice));
    await eventually(runningSubscriptions, (n) => n === 2);

    // Another order of the same owner goes all the way while the first one waits.
    const other = await placeOrder(alice.token, 'tok_visa');
    await eventually(
      async () => statusesOf(all, other).map((o) => o.status),
      (statuses) => statuses.includes('CONFIRMED'),
    );
    // The order's own OrderPlaced, delivered again (as Kafka may): not news, and not PENDING again.
    const [placed] = await eventsOfOrder(order, 'OrderPlaced');
    await system.stream.publish('order-events', [
      { key: placed!.key, value: placed!.value, headers: placed!.headers },
    ]);
    release();

    await eventually(
      async () => one.values.length,
      (n) => n > 0,
    );
    await eventually(
      async () => statusesOf(all, order).map((o) => o.status),
      (statuses) => statuses.includes('CONFIRMED'),
    );
    one.unsubscribe();
    all.unsubscribe();
    expect(one.values.map((v) => [v.orderStatusChanged.id, v.orderStatusChanged.status])).toEqual([
      [order, 'CONFIRMED'],
    ]);
    expect(one.values[0]!.orderStatusChanged.totalCents).toBe(HELD_PRICE_CENTS);
    expect(one.errors).toEqual([]);
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
