import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import { providerChargeKey } from '../subgraphs/payments/src/createPaymentProcessing.ts';
import { createGatedPaymentProvider } from './support/createGatedPaymentProvider.ts';
import { createHoldingProxy } from './support/createHoldingProxy.ts';
import { eventually as eventuallyWithin } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, recordOrderEvents, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

/**
 * Issue #4: the saga against dependencies that fail for a while. A proxy sits between the orders
 * saga and its siblings (the gateway still reaches every subgraph directly), so a test can cut
 * products or payments off for the saga alone, lose replies, or keep a charge running inside
 * payments, and then watch the order through the public API.
 */

interface Step {
  name: string;
  status: string;
  attempts: number;
  error: string | null;
  startedAt: string | null;
  finishedAt: string | null;
}
interface Order {
  id: string;
  status: string;
  failureReason: string | null;
  totalCents: number;
  saga: { state: string; steps: Step[] };
  payment: { status: string; attempts: number; amountCents: number; refundedCents: number } | null;
}
const ORDER_FIELDS = `id status failureReason totalCents
  saga { state steps { name status attempts error startedAt finishedAt } }
  payment { status attempts amountCents refundedCents }`;
const PLACE = `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { ${ORDER_FIELDS} } }`;
const ORDER = `query($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;

/** Steps before the charge give up on a dependency after this long. */
const STEP_DEADLINE_MS = 1_500;
const WAIT_MS = 300;

const eventually = <T>(probe: () => Promise<T>, accept: (value: T) => boolean) =>
  eventuallyWithin(probe, accept, { timeoutMs: 30_000, intervalMs: 50 });

const proxy = createHoldingProxy();
const processor = createGatedPaymentProvider();
let system: TestSystem;
let adminToken: string;
let customer: { token: string; id: string };
const orderEvents: EventEnvelope[] = [];

beforeAll(async () => {
  await proxy.start();
  system = await startTestSystem(
    {
      ORDER_SAGA_WAIT_MS: String(WAIT_MS),
      ORDER_SAGA_STEP_DEADLINE_MS: String(STEP_DEADLINE_MS),
      ORDER_SAGA_RETRY_MAX_BACKOFF_MS: '200',
      // An outage's open circuit must not outlive the test that caused it.
      SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS: '200',
    },
    {
      paymentProvider: processor.provider,
      ordersSiblings: {
        users: proxy.urlFor('users'),
        products: proxy.urlFor('products'),
        payments: proxy.urlFor('payments'),
      },
    },
  );
  for (const name of ['users', 'products', 'payments'] as const)
    proxy.route(name, system.subgraphs[name].url);
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  customer = await signUp(system, 'Patient');
  await recordOrderEvents(system, orderEvents);
}, 60_000);
afterEach(() => proxy.releaseAll());
afterAll(async () => {
  await proxy.stop();
  await system?.stop();
});

async function place(productId: string, quantity: number, paymentToken = 'tok_visa'): Promise<Order> {
  const response = await system.graphql<{ placeOrder: Order }>(
    PLACE,
    { input: { items: [{ productId, quantity }], paymentToken } },
    customer.token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.placeOrder;
}

async function orderById(id: string): Promise<Order> {
  const response = await system.graphql<{ order: Order }>(ORDER, { id }, customer.token);
  expect(response.errors).toBeUndefined();
  return response.data!.order;
}

const settled = (id: string) =>
  eventually(
    () => orderById(id),
    (order) => order.status !== 'PENDING',
  );

async function stockOf(id: string) {
  const response = await system.graphql<{ product: { stock: number; available: number } }>(
    'query($id: ID!) { product(id: $id) { stock available } }',
    { id },
  );
  return response.data!.product;
}

const stepOf = (order: Order, name: string) => order.saga.steps.find((s) => s.name === name);
const statuses = (order: Order) => order.saga.steps.map((s) => [s.name, s.status]);

/** What the card processor did under the order's charge key: its captures and their refunds. */
function processorRecordsOf(orderId: string) {
  const key = providerChargeKey(`${orderId}:charge`);
  const captures = processor.provider.captures().filter((c) => c.idempotencyKey === key);
  const refunds = processor.provider.refunds().filter((r) => captures.some((c) => c.chargeId === r.chargeId));
  return { captures: captures.length, refunds: refunds.length };
}

const eventTypesOf = (orderId: string) =>
  eventually(
    async () => orderEvents.filter((e) => e.aggregateId === orderId),
    (events) => events.some((e) => e.eventType === 'OrderConfirmed' || e.eventType === 'OrderCancelled'),
  ).then((events) => events.map((e) => e.eventType));

describe('placeOrder while the saga runs longer than ORDER_SAGA_WAIT_MS', () => {
  it('returns the order PENDING with its saga RUNNING, and the saga then confirms it', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_101 });
    const charge = processor.hold(2 * 2_101);
    const pending = await place(product.id, 2);
    expect(pending).toMatchObject({ status: 'PENDING', failureReason: null, payment: null });
    expect(pending.saga.state).toBe('RUNNING');
    await eventually(
      async () => charge.waiting(),
      (waiting) => waiting === 1,
    );
    expect(statuses(await orderById(pending.id))).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED'],
      ['RESERVE_STOCK', 'SUCCEEDED'],
      ['CHARGE_PAYMENT', 'RUNNING'],
      ['CONFIRM_ORDER', 'PENDING'],
    ]);

    charge.open();
    const order = await settled(pending.id);
    expect(order).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' } });
    expect(order.payment).toMatchObject({ status: 'CAPTURED', attempts: 1 });
    expect(stepOf(order, 'CHARGE_PAYMENT')).toMatchObject({ status: 'SUCCEEDED', attempts: 1 });
    expect(await stockOf(product.id)).toEqual({ stock: 8, available: 8 });
  });
});

describe('products unavailable to the saga', () => {
  it('at CONFIRM_ORDER, after the charge: the order waits the outage out, past the deadline, and is confirmed, never refunded', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_202 });
    const outage = proxy.add({ field: 'commitReservation', action: 'disconnect' });
    const { id } = await place(product.id, 2);
    const waiting = await eventually(
      () => orderById(id),
      (order) => (stepOf(order, 'CONFIRM_ORDER')?.attempts ?? 0) >= 3,
    );
    await delay(STEP_DEADLINE_MS); // a step before the charge would have given up by now
    const stillWaiting = await orderById(id);
    for (const order of [waiting, stillWaiting]) {
      expect(order).toMatchObject({ status: 'PENDING', saga: { state: 'RUNNING' } });
      expect(order.payment).toMatchObject({ status: 'CAPTURED', refundedCents: 0 });
      expect(stepOf(order, 'CONFIRM_ORDER')).toMatchObject({ status: 'RUNNING', finishedAt: null });
      expect(stepOf(order, 'CONFIRM_ORDER')?.error).toMatch(/^products: (unreachable|circuit open)/);
    }

    outage();
    const order = await settled(id);
    expect(order).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' }, failureReason: null });
    expect(order.payment).toMatchObject({ status: 'CAPTURED', refundedCents: 0 });
    const confirm = stepOf(order, 'CONFIRM_ORDER')!;
    expect(confirm).toMatchObject({ status: 'SUCCEEDED', error: null });
    expect(confirm.attempts).toBeGreaterThanOrEqual(stepOf(stillWaiting, 'CONFIRM_ORDER')!.attempts);
    expect(new Date(confirm.finishedAt!).getTime() - new Date(confirm.startedAt!).getTime()).toBeGreaterThan(
      STEP_DEADLINE_MS,
    );
    expect(processorRecordsOf(id)).toEqual({ captures: 1, refunds: 0 });
    expect(await stockOf(product.id)).toEqual({ stock: 8, available: 8 });
  });

  it('a commit whose replies are lost is confirmed on a later attempt: the stock is sold once, nothing is released', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_303 });
    // Three lost replies: more than the client's own retries, so the saga itself tries again.
    proxy.add({ field: 'commitReservation', action: 'drop-reply', times: 3 });
    const { id } = await place(product.id, 2);
    const order = await settled(id);
    expect(order).toMatchObject({ status: 'CONFIRMED', saga: { state: 'COMPLETED' } });
    expect(stepOf(order, 'CONFIRM_ORDER')).toMatchObject({ status: 'SUCCEEDED', attempts: 2 });
    expect(
      proxy
        .seen()
        .filter((r) => r.field === 'releaseReservation' && r.variables['key'] === `${id}:reserve-stock`),
    ).toEqual([]);
    expect(await stockOf(product.id)).toEqual({ stock: 8, available: 8 });
    expect(processorRecordsOf(id)).toEqual({ captures: 1, refunds: 0 });
  });

  it('at RESERVE_STOCK for longer than the deadline: CANCELLED, the reason names products, nothing charged or held', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_404 });
    const outage = proxy.add({ field: 'reserveStock', action: 'disconnect' });
    const { id } = await place(product.id, 2);
    const order = await settled(id);
    outage();
    expect(order).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' }, payment: null });
    expect(order.failureReason).toMatch(
      /^products unavailable: RESERVE_STOCK gave up after \d+ s \(products: /,
    );
    expect(statuses(order)).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED'],
      ['RESERVE_STOCK', 'FAILED'],
      ['CHARGE_PAYMENT', 'SKIPPED'],
      ['CONFIRM_ORDER', 'SKIPPED'],
      // Released by key although nothing is known to be held: a reserve still on its way holds nothing.
      ['RELEASE_STOCK', 'SUCCEEDED'],
    ]);
    expect(stepOf(order, 'RESERVE_STOCK')!.attempts).toBeGreaterThan(1);
    expect(stepOf(order, 'RESERVE_STOCK')!.error).toBe(order.failureReason);
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 10 });
    expect(await eventTypesOf(id)).toEqual(['OrderPlaced', 'OrderCancelled']);
  });
});

describe('compensation is retried until it is done', () => {
  it('payments unreachable while refunding: the order stays COMPENSATING, then ends CANCELLED with the money back, refunded once', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_505 });
    // The reservation is gone for good at the commit (as when it expired): the paid order is refunded.
    proxy.add({ field: 'commitReservation', action: { errorCode: 'RESERVATION_NOT_HELD' } });
    const outage = proxy.add({ field: 'voidCharge', action: 'disconnect' });
    const { id } = await place(product.id, 2);
    const waiting = await eventually(
      () => orderById(id),
      (order) => (stepOf(order, 'REFUND_PAYMENT')?.attempts ?? 0) >= 2,
    );
    expect(waiting).toMatchObject({ status: 'PENDING', saga: { state: 'COMPENSATING' } });
    expect(waiting.payment).toMatchObject({ status: 'CAPTURED', refundedCents: 0 });
    expect(stepOf(waiting, 'REFUND_PAYMENT')).toMatchObject({ status: 'RUNNING', finishedAt: null });
    expect(stepOf(waiting, 'REFUND_PAYMENT')?.error).toMatch(/^payments: (unreachable|circuit open)/);
    expect(stepOf(waiting, 'RELEASE_STOCK')).toMatchObject({ status: 'PENDING', attempts: 0 });
    expect(processorRecordsOf(id)).toEqual({ captures: 1, refunds: 0 });

    outage();
    const order = await settled(id);
    expect(order).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' } });
    expect(order.failureReason).toMatch(/refused by the test proxy/);
    expect(order.saga.steps.map((s) => [s.name, s.status, s.error])).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED', null],
      ['RESERVE_STOCK', 'COMPENSATED', null],
      ['CHARGE_PAYMENT', 'COMPENSATED', null],
      ['CONFIRM_ORDER', 'FAILED', order.failureReason],
      ['REFUND_PAYMENT', 'SUCCEEDED', null],
      ['RELEASE_STOCK', 'SUCCEEDED', null],
    ]);
    const refund = stepOf(order, 'REFUND_PAYMENT')!;
    expect(refund.attempts).toBeGreaterThanOrEqual(stepOf(waiting, 'REFUND_PAYMENT')!.attempts);
    expect(refund.startedAt && refund.finishedAt).toBeTruthy();
    expect(order.payment).toEqual({
      status: 'REFUNDED',
      attempts: 1,
      amountCents: 5_010,
      refundedCents: 5_010,
    });
    expect(processorRecordsOf(id)).toEqual({ captures: 1, refunds: 1 });
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 10 });
    expect(await eventTypesOf(id)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentCaptured',
      'PaymentRefunded',
      'StockReleased',
      'OrderCancelled',
    ]);
  });

  it('a compensation refused for good ends the saga FAILED, the order CANCELLED, with the refusal in the step log', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_606 });
    proxy.add({ field: 'releaseReservation', action: { errorCode: 'RESERVATION_NOT_HELD' } });
    const { id } = await place(product.id, 1, 'tok_declined');
    const order = await settled(id);
    expect(order).toMatchObject({ status: 'CANCELLED', saga: { state: 'FAILED' } });
    expect(order.failureReason).toMatch(/declined/);
    expect(stepOf(order, 'RELEASE_STOCK')).toMatchObject({ status: 'FAILED', attempts: 1 });
    expect(stepOf(order, 'RELEASE_STOCK')?.error).toMatch(/releaseReservation refused/);
    expect(stepOf(order, 'RESERVE_STOCK')?.status).toBe('SUCCEEDED'); // not undone
  });
});

describe('a charge still running at payments when the saga gives up on it', () => {
  it('is voided: the capture that lands afterwards is refunded at once, and the order ends CANCELLED with no money kept', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 2_707 });
    const charge = processor.hold(2 * 2_707);
    // The saga never hears from chargePayment: each call reaches payments, which waits on the
    // processor, and the connection to the saga is lost.
    proxy.add({ field: 'chargePayment', action: 'drop-reply' });
    const { id } = await place(product.id, 2);
    const voiding = await eventually(
      () => orderById(id),
      (order) => /still running/.test(stepOf(order, 'REFUND_PAYMENT')?.error ?? ''),
    );
    expect(voiding).toMatchObject({ status: 'PENDING', saga: { state: 'COMPENSATING' }, payment: null });
    expect(voiding.failureReason).toMatch(/^payments unavailable: CHARGE_PAYMENT gave up/);
    expect(stepOf(voiding, 'CHARGE_PAYMENT')?.status).toBe('FAILED');
    expect(stepOf(voiding, 'REFUND_PAYMENT')?.status).toBe('RUNNING');
    expect(charge.waiting()).toBe(1); // payments' charge is still at the processor

    charge.open();
    const order = await settled(id);
    expect(order).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' } });
    expect(statuses(order)).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED'],
      ['RESERVE_STOCK', 'COMPENSATED'],
      ['CHARGE_PAYMENT', 'FAILED'],
      ['CONFIRM_ORDER', 'SKIPPED'],
      ['REFUND_PAYMENT', 'SUCCEEDED'],
      ['RELEASE_STOCK', 'SUCCEEDED'],
    ]);
    expect(order.payment).toMatchObject({ status: 'REFUNDED', amountCents: 5_414, refundedCents: 5_414 });
    expect(processorRecordsOf(id)).toEqual({ captures: 1, refunds: 1 });
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 10 });
    expect(await eventTypesOf(id)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentRefunded',
      'StockReleased',
      'OrderCancelled',
    ]);
  });
});
