import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createUserTokens, Role } from '../lib/auth/tokens.ts';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import { createOrderStore } from '../subgraphs/orders/src/store.ts';
import {
  PRODUCTION_PAYMENT_TIMING,
  providerChargeKey,
} from '../subgraphs/payments/src/createPaymentProcessing.ts';
import { createTestPaymentProvider } from '../subgraphs/payments/src/createTestPaymentProvider.ts';
import { ADMIN, createProduct, expectCode, logIn, recordOrderEvents, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { eventually as eventuallyWithin } from './support/eventually.ts';

interface Order {
  id: string;
  status: string;
  failureReason: string | null;
  totalCents: number;
  items: { product: { id: string; available: number }; quantity: number; unitPriceCents: number }[];
  saga: { state: string; steps: { name: string; status: string; attempts: number; error: string | null }[] };
  payment: { status: string; attempts: number; refundedCents: number } | null;
}

const ORDER_FIELDS = `id status failureReason totalCents
  items { product { id available } quantity unitPriceCents }
  saga { state steps { name status attempts error } }
  payment { status attempts refundedCents }`;
const PLACE = `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER_FIELDS} } }`;
const ORDER = `query($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;
const PRODUCT = 'query($id: ID!) { product(id: $id) { available stock } }';

// Sagas with tok_timeout settle after ~10 s: this file keeps a 30 s bound.
const eventually = <T>(probe: () => Promise<T>, accept: (value: T) => boolean) =>
  eventuallyWithin(probe, accept, { timeoutMs: 30_000, intervalMs: 100 });

// The card processor stands outside the system: this one lets the tests count what it did.
const processor = createTestPaymentProvider({ replyTimeoutMs: PRODUCTION_PAYMENT_TIMING.replyTimeoutMs });
const chargeKeyOf = (orderId: string) => providerChargeKey(`${orderId}:charge`);
/** What the processor did for an order: captures, and charge calls it received. */
const processorRecordsOf = (orderId: string) => ({
  captures: processor.capturesFor(chargeKeyOf(orderId)),
  calls: processor.chargeCallsFor(chargeKeyOf(orderId)),
});

let system: TestSystem;
let adminToken: string;
let customer: { token: string; id: string; email: string };
const orderEvents: EventEnvelope[] = [];

beforeAll(async () => {
  system = await startTestSystem({}, { paymentProvider: processor });
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  customer = await signUp(system, 'Buyer');
  await recordOrderEvents(system, orderEvents);
}, 60_000);
afterAll(() => system?.stop());

async function placeOrder(
  input: { items: { productId: string; quantity: number }[]; paymentToken: string; idempotencyKey?: string },
  token = customer.token,
) {
  return system.graphql<{ placeOrder: Order }>(PLACE, { input }, token);
}

async function orderById(id: string, token = customer.token): Promise<Order> {
  const response = await system.graphql<{ order: Order }>(ORDER, { id }, token);
  expect(response.errors).toBeUndefined();
  return response.data!.order;
}

/** Places an order and polls it until its saga ends (tok_timeout outlasts ORDER_SAGA_WAIT_MS). */
async function placeAndSettle(productId: string, paymentToken: string, quantity = 2): Promise<Order> {
  const response = await placeOrder({ items: [{ productId, quantity }], paymentToken });
  expect(response.errors).toBeUndefined();
  return eventually(
    () => orderById(response.data!.placeOrder.id),
    (order) => order.status !== 'PENDING',
  );
}

async function availableOf(productId: string): Promise<number> {
  const response = await system.graphql<{ product: { available: number } }>(PRODUCT, { id: productId });
  return response.data!.product.available;
}

const stepStatuses = (order: Order) => Object.fromEntries(order.saga.steps.map((s) => [s.name, s.status]));

describe('placeOrder: the payment tokens of API.md', () => {
  it('tok_visa: CONFIRMED, payment CAPTURED after 1 attempt, stock sold', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 1_000 });
    const response = await placeOrder({
      items: [{ productId: product.id, quantity: 3 }],
      paymentToken: 'tok_visa',
    });
    expect(response.errors).toBeUndefined();
    const order = response.data!.placeOrder; // within ORDER_SAGA_WAIT_MS: already final
    expect(order).toMatchObject({ status: 'CONFIRMED', failureReason: null, totalCents: 3_000 });
    expect(order.items[0]).toMatchObject({ quantity: 3, unitPriceCents: 1_000 });
    expect(order.payment).toMatchObject({ status: 'CAPTURED', attempts: 1 });
    expect(order.saga.state).toBe('COMPLETED');
    expect(order.saga.steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED', 1],
      ['RESERVE_STOCK', 'SUCCEEDED', 1],
      ['CHARGE_PAYMENT', 'SUCCEEDED', 1],
      ['CONFIRM_ORDER', 'SUCCEEDED', 1],
    ]);
    expect(processorRecordsOf(order.id)).toEqual({ captures: 1, calls: 1 });
    expect(await availableOf(product.id)).toBe(7);
  });

  it.each([
    ['tok_declined', 'declined', 'DECLINED'],
    ['tok_insufficient_funds', 'insufficient funds', 'DECLINED'],
  ])('%s: CANCELLED (reason mentions %s), stock released', async (token, reason, paymentStatus) => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const order = await placeAndSettle(product.id, token);
    expect(order.status).toBe('CANCELLED');
    expect(order.failureReason).toContain(reason);
    expect(order.payment).toMatchObject({ status: paymentStatus, attempts: 1 });
    expect(order.saga.state).toBe('COMPENSATED');
    expect(stepStatuses(order)).toEqual({
      VALIDATE_USER: 'SUCCEEDED',
      RESERVE_STOCK: 'COMPENSATED',
      CHARGE_PAYMENT: 'FAILED',
      CONFIRM_ORDER: 'SKIPPED',
      // Payments answered DECLINED: nothing to refund, so no REFUND_PAYMENT step.
      RELEASE_STOCK: 'SUCCEEDED',
    });
    expect(processorRecordsOf(order.id)).toEqual({ captures: 0, calls: 1 }); // declines are never retried
    expect(await availableOf(product.id)).toBe(10);
  });

  /** Every forward step succeeded on the saga's first call: retries happened inside payments. */
  const confirmedInOneGo = [
    ['VALIDATE_USER', 'SUCCEEDED', 1, null],
    ['RESERVE_STOCK', 'SUCCEEDED', 1, null],
    ['CHARGE_PAYMENT', 'SUCCEEDED', 1, null],
    ['CONFIRM_ORDER', 'SUCCEEDED', 1, null],
  ];
  const stepLog = (order: Order) => order.saga.steps.map((s) => [s.name, s.status, s.attempts, s.error]);

  it('tok_flaky: CONFIRMED after 3 payment attempts, one capture', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const order = await placeAndSettle(product.id, 'tok_flaky');
    expect(order).toMatchObject({ status: 'CONFIRMED', failureReason: null, saga: { state: 'COMPLETED' } });
    expect(order.payment).toMatchObject({ status: 'CAPTURED', attempts: 3, refundedCents: 0 });
    expect(stepLog(order)).toEqual(confirmedInOneGo);
    expect(processorRecordsOf(order.id)).toEqual({ captures: 1, calls: 3 });
    expect(await availableOf(product.id)).toBe(8);
  });

  it('tok_timeout: CANCELLED after the retries, reason mentions timeout, payment FAILED, nothing captured', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const order = await placeAndSettle(product.id, 'tok_timeout');
    expect(order).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' } });
    expect(order.failureReason).toContain('timeout');
    expect(order.payment).toEqual({ status: 'FAILED', attempts: 3, refundedCents: 0 });
    // Payments' FAILED is an answer (its own three attempts timed out), not an outage: the saga
    // neither retries the charge nor needs to refund it.
    expect(stepLog(order)).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED', 1, null],
      ['RESERVE_STOCK', 'COMPENSATED', 1, null],
      ['CHARGE_PAYMENT', 'FAILED', 1, order.failureReason],
      ['CONFIRM_ORDER', 'SKIPPED', 0, null],
      ['RELEASE_STOCK', 'SUCCEEDED', 1, null],
    ]);
    expect(processorRecordsOf(order.id)).toEqual({ captures: 0, calls: 3 });
    expect(await availableOf(product.id)).toBe(10);
  }, 40_000);

  it('tok_timeout_captured: CONFIRMED with exactly one capture at the processor', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const order = await placeAndSettle(product.id, 'tok_timeout_captured');
    expect(order).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' } });
    // The first call captured but its reply timed out; the second, same key, learnt of the capture.
    expect(order.payment).toEqual({ status: 'CAPTURED', attempts: 2, refundedCents: 0 });
    expect(stepLog(order)).toEqual(confirmedInOneGo);
    expect(processorRecordsOf(order.id)).toEqual({ captures: 1, calls: 2 });
    expect(await availableOf(product.id)).toBe(8);
  }, 40_000);

  it('insufficient stock: CANCELLED, reason mentions stock, nothing charged', async () => {
    const product = await createProduct(system, adminToken, { stock: 1 });
    const order = await placeAndSettle(product.id, 'tok_visa', 5);
    expect(order.status).toBe('CANCELLED');
    expect(order.failureReason).toMatch(/stock/i);
    expect(order.payment).toBeNull();
    expect(stepStatuses(order)).toEqual({
      VALIDATE_USER: 'SUCCEEDED',
      RESERVE_STOCK: 'FAILED',
      CHARGE_PAYMENT: 'SKIPPED',
      CONFIRM_ORDER: 'SKIPPED',
    });
    expect(await availableOf(product.id)).toBe(1);
  });
});

describe('placeOrder: validation', () => {
  async function ordersOfCustomer(token: string): Promise<number> {
    const response = await system.graphql<{ me: { orders: { edges: unknown[] } } }>(
      '{ me { orders(first: 100) { edges { cursor } } } }',
      {},
      token,
    );
    return response.data!.me.orders.edges.length;
  }

  it('needs a signed-in user', async () => {
    const product = await createProduct(system, adminToken);
    const response = await system.graphql(PLACE, {
      input: { items: [{ productId: product.id, quantity: 1 }], paymentToken: 'tok_visa' },
    });
    expectCode(response, 'UNAUTHENTICATED');
  });

  it('empty items, quantity < 1 and unknown products are BAD_USER_INPUT and create no order', async () => {
    const user = await signUp(system, 'Invalid');
    const product = await createProduct(system, adminToken);
    for (const items of [
      [],
      [{ productId: product.id, quantity: 0 }],
      [{ productId: randomUUID(), quantity: 1 }],
      [{ productId: 'not-a-uuid', quantity: 1 }],
    ]) {
      const response = await placeOrder({ items, paymentToken: 'tok_visa' }, user.token);
      expectCode(response, 'BAD_USER_INPUT');
    }
    expect(await ordersOfCustomer(user.token)).toBe(0);
  });

  it('a total above the largest Int of cents is BAD_USER_INPUT, creates no order and holds no stock', async () => {
    const user = await signUp(system, 'Lavish');
    const [dear, dearer] = await Promise.all([
      createProduct(system, adminToken, { stock: 1_000_000, priceCents: 1_000_000 }),
      createProduct(system, adminToken, { stock: 1_000_000, priceCents: 1_500_000_000 }),
    ]);
    for (const items of [
      [{ productId: dear.id, quantity: 1_000_000 }], // 10^12 cents in one line
      [
        { productId: dear.id, quantity: 1_000 }, // 10^9
        { productId: dearer.id, quantity: 1 }, // + 1.5 * 10^9: only the sum is too large
      ],
    ]) {
      const response = await placeOrder({ items, paymentToken: 'tok_visa' }, user.token);
      expectCode(response, 'BAD_USER_INPUT');
      expect(response.errors?.[0]?.message).toBe('items: the order total must be at most 2147483647 cents');
    }
    expect(await ordersOfCustomer(user.token)).toBe(0);
    expect(await availableOf(dear.id)).toBe(1_000_000);

    // The largest total there can be is still an order.
    const limit = await createProduct(system, adminToken, { stock: 1, priceCents: 2_147_483_647 });
    const response = await placeOrder(
      { items: [{ productId: limit.id, quantity: 1 }], paymentToken: 'tok_visa' },
      user.token,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data!.placeOrder).toMatchObject({ status: 'CONFIRMED', totalCents: 2_147_483_647 });
  });
});

describe('placeOrder: idempotency', () => {
  it('the same key twice (and racing) is one order, charged once', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const input = {
      items: [{ productId: product.id, quantity: 1 }],
      paymentToken: 'tok_visa',
      idempotencyKey: randomUUID(),
    };
    const responses = await Promise.all([placeOrder(input), placeOrder(input), placeOrder(input)]);
    const ids = new Set(responses.map((r) => r.data?.placeOrder.id));
    expect(ids.size).toBe(1);
    const again = await placeOrder(input);
    expect(again.data!.placeOrder).toMatchObject({ id: [...ids][0], status: 'CONFIRMED' });
    expect(await availableOf(product.id)).toBe(9);
  });

  it("another user's identical key is an independent order", async () => {
    const other = await signUp(system, 'Other');
    const product = await createProduct(system, adminToken, { stock: 10 });
    const input = {
      items: [{ productId: product.id, quantity: 1 }],
      paymentToken: 'tok_visa',
      idempotencyKey: 'shared-key',
    };
    const mine = await placeOrder(input);
    const theirs = await placeOrder(input, other.token);
    expect(mine.data!.placeOrder.id).not.toBe(theirs.data!.placeOrder.id);
    expect(await availableOf(product.id)).toBe(8);
  });

  it('the same key with other items or another token is IDEMPOTENCY_CONFLICT', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const key = randomUUID();
    const first = await placeOrder({
      items: [{ productId: product.id, quantity: 1 }],
      paymentToken: 'tok_visa',
      idempotencyKey: key,
    });
    expect(first.errors).toBeUndefined();
    expectCode(
      await placeOrder({
        items: [{ productId: product.id, quantity: 2 }],
        paymentToken: 'tok_visa',
        idempotencyKey: key,
      }),
      'IDEMPOTENCY_CONFLICT',
    );
    expectCode(
      await placeOrder({
        items: [{ productId: product.id, quantity: 1 }],
        paymentToken: 'tok_flaky',
        idempotencyKey: key,
      }),
      'IDEMPOTENCY_CONFLICT',
    );
  });
});

describe('placeOrder: events and notifications', () => {
  it('publishes OrderPlaced..OrderConfirmed on order-events, in order, and notifies the customer', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 700 });
    const order = await placeAndSettle(product.id, 'tok_visa', 2);
    const events = await eventually(
      async () => orderEvents.filter((e) => e.aggregateId === order.id),
      (list) => list.some((e) => e.eventType === 'OrderConfirmed'),
    );
    expect(events.map((e) => e.eventType)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentCaptured',
      'OrderConfirmed',
    ]);
    expect(events.map((e) => e.version)).toEqual([1, 2, 3, 4]);
    expect(events[3]!.data).toMatchObject({
      orderId: order.id,
      userId: customer.id,
      totalCents: 1_400,
      items: [{ productId: product.id, quantity: 2, unitPriceCents: 700 }],
    });
    const notifications = await eventually(
      async () =>
        (
          await system.graphql<{ me: { notifications: { kind: string }[] } }>(
            '{ me { notifications { kind } } }',
            {},
            customer.token,
          )
        ).data!.me.notifications,
      (list) => list.some((n) => n.kind === 'ORDER_CONFIRMED'),
    );
    expect(notifications.some((n) => n.kind === 'ORDER_CONFIRMED')).toBe(true);
  });
  it('an order by a user who no longer exists is CANCELLED at VALIDATE_USER: nothing held or charged, nothing dead-lettered', async () => {
    const deadLetters: EventEnvelope[] = [];
    const subscription = await system.stream.subscribe({
      groupId: `order-events-dlq-reader-${randomUUID()}`,
      topics: ['order-events.dlq'],
      handle: async (message) => {
        deadLetters.push(JSON.parse(message.value) as EventEnvelope);
      },
    });
    try {
      // A valid token whose account is gone (no such user in the users service).
      const ghost = randomUUID();
      const token = await createUserTokens({ secret: system.secrets.jwtSecret, ttlSeconds: 60 }).issue({
        id: ghost,
        role: Role.CUSTOMER,
      });
      const product = await createProduct(system, adminToken, { stock: 10 });
      const response = await placeOrder(
        { items: [{ productId: product.id, quantity: 1 }], paymentToken: 'tok_visa' },
        token,
      );
      expect(response.errors).toBeUndefined();
      const order = await eventually(
        () => orderById(response.data!.placeOrder.id, token),
        (o) => o.status !== 'PENDING',
      );
      expect(order).toMatchObject({ status: 'CANCELLED', payment: null, saga: { state: 'COMPENSATED' } });
      expect(order.failureReason).toBe(`user ${ghost} does not exist`);
      expect(stepStatuses(order)).toEqual({
        VALIDATE_USER: 'FAILED',
        RESERVE_STOCK: 'SKIPPED',
        CHARGE_PAYMENT: 'SKIPPED',
        CONFIRM_ORDER: 'SKIPPED',
      });
      expect(await availableOf(product.id)).toBe(10);
      const events = await eventually(
        async () => orderEvents.filter((e) => e.aggregateId === order.id),
        (list) => list.some((e) => e.eventType === 'OrderCancelled'),
      );
      expect(events.map((e) => [e.eventType, (e.data as { email: unknown }).email])).toEqual([
        ['OrderPlaced', null],
        ['OrderCancelled', null],
      ]);
      // Notifications had nobody to write to: it skipped the event rather than dead-letter it.
      // A later order's notification shows the consumer is past it.
      const later = await placeAndSettle(product.id, 'tok_visa', 1);
      await eventually(
        async () =>
          (
            await system.graphql<{ me: { notifications: { kind: string; subject: string }[] } }>(
              '{ me { notifications(first: 100) { kind subject } } }',
              {},
              customer.token,
            )
          ).data!.me.notifications,
        (list) => list.some((n) => n.subject.includes(later.id)),
      );
      expect(deadLetters).toEqual([]);
    } finally {
      await subscription.stop();
    }
  });

  it('a declined order publishes its compensation and notifies ORDER_CANCELLED', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const order = await placeAndSettle(product.id, 'tok_declined', 1);
    const events = await eventually(
      async () => orderEvents.filter((e) => e.aggregateId === order.id),
      (list) => list.some((e) => e.eventType === 'OrderCancelled'),
    );
    expect(events.map((e) => e.eventType)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentFailed',
      'StockReleased',
      'OrderCancelled',
    ]);
    expect(events.map((e) => e.version)).toEqual([1, 2, 3, 4, 5]);
    expect((events[4]!.data as { reason: string }).reason).toContain('declined');
    await eventually(
      async () =>
        (
          await system.graphql<{ me: { notifications: { kind: string }[] } }>(
            '{ me { notifications(first: 100) { kind } } }',
            {},
            customer.token,
          )
        ).data!.me.notifications,
      (list) => list.some((n) => n.kind === 'ORDER_CANCELLED'),
    );
  });
});

describe('placeOrder: durability', () => {
  it('a saga interrupted mid-step resumes when the orders service restarts', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 500 });
    const at = new Date();
    const store = createOrderStore(system.subgraphs.orders.db);
    const interrupted = async (paymentToken: string) => {
      const order = await store.create({
        userId: customer.id,
        status: 'PENDING',
        sagaState: 'RUNNING',
        items: [{ productId: product.id, quantity: 2, unitPriceCents: 500 }],
        steps: [
          {
            name: 'VALIDATE_USER',
            status: 'SUCCEEDED',
            attempts: 1,
            error: null,
            startedAt: at,
            finishedAt: at,
          },
          {
            name: 'RESERVE_STOCK',
            status: 'RUNNING',
            attempts: 1,
            error: null,
            startedAt: at,
            finishedAt: null,
          },
          {
            name: 'CHARGE_PAYMENT',
            status: 'PENDING',
            attempts: 0,
            error: null,
            startedAt: null,
            finishedAt: null,
          },
          {
            name: 'CONFIRM_ORDER',
            status: 'PENDING',
            attempts: 0,
            error: null,
            startedAt: null,
            finishedAt: null,
          },
        ],
      });
      await system.subgraphs.orders.db.query(
        'UPDATE orders SET payment_token = $2, user_email = $3 WHERE id = $1',
        [order.id, paymentToken, customer.email],
      );
      return order.id;
    };
    const confirmed = await interrupted('tok_visa');
    const declined = await interrupted('tok_declined');
    await system.restart('orders');
    const [a, b] = await Promise.all(
      [confirmed, declined].map((id) =>
        eventually(
          () => orderById(id),
          (o) => o.status !== 'PENDING',
        ),
      ),
    );
    expect(a).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' } });
    expect(a!.saga.steps.find((s) => s.name === 'RESERVE_STOCK')?.attempts).toBe(2);
    expect(b).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' } });
    expect(b!.failureReason).toContain('declined');
    expect(await availableOf(product.id)).toBe(8);
  });
});
