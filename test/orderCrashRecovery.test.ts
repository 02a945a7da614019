import { randomBytes, randomUUID } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as delay } from 'node:timers/promises';
import type { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceCredentials, Role, SERVICE_CREDENTIAL_HEADER } from '../lib/auth/tokens.ts';
import {
  createEmbeddedPostgres,
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
} from '../lib/db/createDatabase.ts';
import { migrate } from '../lib/db/migrate.ts';
import type { Service } from '../lib/http/createSubgraphService.ts';
import { createObservability } from '../lib/observability/createObservability.ts';
import { createLogger } from '../lib/logger.ts';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import { outboxMigrations } from '../lib/outbox/appendEvent.ts';
import { createSagaStore } from '../subgraphs/orders/src/saga/sagaStore.ts';
import { createOrdersService } from '../subgraphs/orders/src/server.ts';
import { createOrderStore } from '../subgraphs/orders/src/store.ts';
import {
  PRODUCTION_PAYMENT_TIMING,
  providerChargeKey,
} from '../subgraphs/payments/src/createPaymentProcessing.ts';
import { createTestPaymentProvider } from '../subgraphs/payments/src/createTestPaymentProvider.ts';
import { createHoldingProxy } from './support/createHoldingProxy.ts';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, recordOrderEvents, signUp } from './support/fixtures.ts';
import { startServiceProcess, type ServiceProcess } from './support/startServiceProcess.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { testConfig, uniqueSchemaPrefix } from './support/testConfig.ts';

/**
 * Issue #4, crash recovery: the orders service runs as its own process and is killed with
 * SIGKILL while sagas are stopped at chosen steps. A proxy between it and its siblings holds
 * the call of the step (or its reply) so the kill lands exactly there, with no hook in the
 * service. After a restart every saga must end as it should, with no stock leaked and nothing
 * charged or refunded twice.
 */

interface Order {
  id: string;
  status: string;
  failureReason: string | null;
  totalCents: number;
  items: { product: { id: string }; quantity: number }[];
  saga: { state: string; steps: { name: string; status: string; attempts: number }[] };
  payment: { status: string; amountCents: number; refundedCents: number } | null;
}
const ORDER_FIELDS = `id status failureReason totalCents items { product { id } quantity }
  saga { state steps { name status attempts } }
  payment { status amountCents refundedCents }`;
const PLACE = `mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }`;
const ORDER = `query($id: ID!) { order(id: $id) { ${ORDER_FIELDS} } }`;

/** Short, so a killed process's sagas are taken over quickly. */
const LEASE_MS = 2_000;
const secrets = {
  JWT_SECRET: randomBytes(48).toString('base64'),
  SERVICE_SECRET: randomBytes(48).toString('base64'),
};

const proxy = createHoldingProxy();
const provider = createTestPaymentProvider({ replyTimeoutMs: PRODUCTION_PAYMENT_TIMING.replyTimeoutMs });
const dataDir = mkdtempSync(join(tmpdir(), 'orders-crash-'));
// Known before the system starts, so the orders process can start beside it.
const schemaPrefix = uniqueSchemaPrefix();
const config = testConfig({ ...secrets, MESSAGING_NAMESPACE: schemaPrefix });
let system: TestSystem;
let orders: ServiceProcess | undefined;
let ordersStarted: Promise<ServiceProcess> | undefined;
let adminToken: string;
let customer: { token: string; id: string };

/** The orders process, its siblings behind the proxy, on the test system's database and brokers. */
async function startOrders(): Promise<ServiceProcess> {
  const started = await startServiceProcess('orders', {
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    ORDERS_PORT: '0',
    ...secrets,
    SUBGRAPH_USERS_URL: proxy.urlFor('users'),
    SUBGRAPH_PRODUCTS_URL: proxy.urlFor('products'),
    SUBGRAPH_PAYMENTS_URL: proxy.urlFor('payments'),
    // Real PostgreSQL: the test system's orders schema. Embedded: its own PGlite, kept on disk
    // across the kill (orders owns only its own schema).
    DATABASE_URL: config.DATABASE_URL ?? '',
    DATABASE_SCHEMA_PREFIX: schemaPrefix,
    DATA_DIR: dataDir,
    KAFKA_BROKERS: config.KAFKA_BROKERS ?? '',
    RABBITMQ_URL: config.RABBITMQ_URL ?? '',
    MESSAGING_NAMESPACE: config.MESSAGING_NAMESPACE,
    ORDER_SAGA_LEASE_MS: String(LEASE_MS),
    // placeOrder answers at once (PENDING): the test follows the saga by polling.
    ORDER_SAGA_WAIT_MS: '0',
  });
  proxy.route('orders', started.url);
  return started;
}

beforeAll(async () => {
  await proxy.start();
  // Orders needs its siblings only once it runs a saga: both start at once.
  ordersStarted = startOrders();
  ordersStarted.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
  system = await startTestSystem(secrets, {
    external: { orders: proxy.urlFor('orders') },
    paymentProvider: provider,
    schemaPrefix,
  });
  for (const name of ['users', 'products', 'payments'] as const) {
    proxy.route(name, system.subgraphs[name].url);
  }
  [orders, adminToken, customer] = await Promise.all([
    ordersStarted,
    logIn(system, ADMIN.email, ADMIN.password),
    signUp(system, 'Crash'),
  ]);
}, 90_000);

afterAll(async () => {
  await (orders ?? (await ordersStarted?.catch(() => undefined)))?.kill();
  await proxy.stop();
  await system?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

async function place(productId: string, quantity: number, paymentToken: string): Promise<string> {
  const response = await system.graphql<{ placeOrder: { id: string } }>(
    PLACE,
    { input: { items: [{ productId, quantity }], paymentToken } },
    customer.token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.placeOrder.id;
}

async function orderById(id: string): Promise<Order> {
  const response = await system.graphql<{ order: Order }>(ORDER, { id }, customer.token);
  expect(response.errors).toBeUndefined();
  return response.data!.order;
}

async function stockOf(id: string) {
  const response = await system.graphql<{ product: { stock: number; available: number } }>(
    'query($id: ID!) { product(id: $id) { stock available } }',
    { id },
  );
  return response.data!.product;
}

const steps = (order: Order) => Object.fromEntries(order.saga.steps.map((s) => [s.name, s.status]));
const attempts = (order: Order, step: string) => order.saga.steps.find((s) => s.name === step)?.attempts;
const chargeAmount = (variables: Record<string, unknown>) =>
  (variables['input'] as { amountCents?: number } | undefined)?.amountCents;

/** Kills the orders process, lets the network go (late deliveries included) and starts it again. */
async function killAndRestart() {
  expect(await orders!.kill()).toBe('SIGKILL');
  proxy.releaseAll();
  orders = await startOrders();
}

async function settled(ids: string[]): Promise<Order[]> {
  return Promise.all(
    ids.map((id) =>
      eventually(
        () => orderById(id),
        (order) => order.status !== 'PENDING',
        { timeoutMs: 30_000, intervalMs: 100 },
      ),
    ),
  );
}

/**
 * The order-events the orders process wrote for an order, from its outbox: every event it
 * publishes, in order, whether or not a broker this test process can read carries them (on the
 * embedded default the process has its own in-memory stream). Embedded, its PGlite may be opened
 * by one process only: the orders process is killed for the read and started again after.
 */
async function eventsWrittenFor(orderId: string): Promise<EventEnvelope[]> {
  const schema = `${schemaPrefix}orders`;
  const read = async (db: Database) => {
    const rows = await db.query<{ envelope: EventEnvelope | string }>(
      'SELECT envelope FROM outbox WHERE aggregate_id = $1 ORDER BY id',
      [orderId],
    );
    return rows.map((row) =>
      typeof row.envelope === 'string' ? (JSON.parse(row.envelope) as EventEnvelope) : row.envelope,
    );
  };
  if (config.DATABASE_URL) {
    const db = createPostgresDatabase({ url: config.DATABASE_URL, schema });
    try {
      return await read(db);
    } finally {
      await db.close();
    }
  }
  await orders!.kill();
  const db = createPgliteDatabase({
    pglite: await createEmbeddedPostgres(join(dataDir, schema)),
    schema,
    ownsInstance: true,
  });
  try {
    return await read(db);
  } finally {
    await db.close();
    orders = await startOrders();
  }
}

/** What the card processor did for an order: its captures, and the refunds of those. */
function processorRecordsOf(orderId: string) {
  const captures = provider
    .captures()
    .filter((c) => c.idempotencyKey === providerChargeKey(`${orderId}:charge`));
  const refunds = provider.refunds().filter((r) => captures.some((c) => c.chargeId === r.chargeId));
  return { captures, refunds };
}

/** Stock and money agree with the outcomes: sold = confirmed, nothing held, kept = revenue. */
async function expectConserved(settledOrders: Order[], initialStock: number) {
  for (const order of settledOrders) {
    const item = order.items[0]!;
    const { stock, available } = await stockOf(item.product.id);
    expect(stock).toBe(order.status === 'CONFIRMED' ? initialStock - item.quantity : initialStock);
    expect(available).toBe(stock); // no reservation left open, none released twice
    const { captures, refunds } = processorRecordsOf(order.id);
    expect(captures.length).toBeLessThanOrEqual(1); // never charged twice
    expect(refunds.length).toBeLessThanOrEqual(1); // never refunded twice
    const kept =
      captures.reduce((sum, c) => sum + c.amountCents, 0) -
      refunds.reduce((sum, r) => sum + r.amountCents, 0);
    expect(kept).toBe(order.status === 'CONFIRMED' ? order.totalCents : 0);
  }
}

describe('orders killed with SIGKILL mid-saga', () => {
  it('after RESERVE_STOCK, after CHARGE_PAYMENT and while releasing stock: every saga ends as it should once restarted', async () => {
    const [heldCharge, heldChargeReply, heldCommit, heldRelease] = await Promise.all(
      [1_101, 1_202, 1_303, 1_404].map((priceCents) =>
        createProduct(system, adminToken, { stock: 10, priceCents }),
      ),
    );
    // Stops each saga at its own step: two charges (one never sent, one sent but unanswered),
    // the commit of the order that got through, the release of the declined one.
    proxy.add({ field: 'chargePayment', when: (v) => chargeAmount(v) === 2 * 1_101, action: 'hold-request' });
    proxy.add({ field: 'chargePayment', when: (v) => chargeAmount(v) === 2 * 1_202, action: 'hold-reply' });
    proxy.add({ field: 'commitReservation', action: 'hold-request' });
    proxy.add({ field: 'releaseReservation', action: 'hold-request' });
    const ids = await Promise.all([
      place(heldCharge!.id, 2, 'tok_visa'),
      place(heldChargeReply!.id, 2, 'tok_visa'),
      place(heldCommit!.id, 2, 'tok_visa'),
      place(heldRelease!.id, 2, 'tok_declined'),
    ]);
    await eventually(
      async () => proxy.held().map((h) => h.field),
      (fields) =>
        fields.filter((f) => f === 'chargePayment').length === 2 &&
        fields.includes('commitReservation') &&
        fields.includes('releaseReservation'),
    );
    const before = await Promise.all(ids.map(orderById));
    expect(before.map(steps)).toEqual([
      {
        VALIDATE_USER: 'SUCCEEDED',
        RESERVE_STOCK: 'SUCCEEDED',
        CHARGE_PAYMENT: 'RUNNING',
        CONFIRM_ORDER: 'PENDING',
      },
      {
        VALIDATE_USER: 'SUCCEEDED',
        RESERVE_STOCK: 'SUCCEEDED',
        CHARGE_PAYMENT: 'RUNNING',
        CONFIRM_ORDER: 'PENDING',
      },
      {
        VALIDATE_USER: 'SUCCEEDED',
        RESERVE_STOCK: 'SUCCEEDED',
        CHARGE_PAYMENT: 'SUCCEEDED',
        CONFIRM_ORDER: 'RUNNING',
      },
      {
        VALIDATE_USER: 'SUCCEEDED',
        RESERVE_STOCK: 'SUCCEEDED',
        CHARGE_PAYMENT: 'FAILED',
        CONFIRM_ORDER: 'PENDING',
        RELEASE_STOCK: 'RUNNING',
      },
    ]);
    expect(before[3]!.saga.state).toBe('COMPENSATING');
    expect(processorRecordsOf(ids[1]).captures).toHaveLength(1); // captured, but orders never heard

    await killAndRestart();

    const after = await settled(ids);
    expect(after.map((o) => [o.status, o.saga.state])).toEqual([
      ['CONFIRMED', 'COMPLETED'],
      ['CONFIRMED', 'COMPLETED'],
      ['CONFIRMED', 'COMPLETED'],
      ['CANCELLED', 'COMPENSATED'],
    ]);
    // The interrupted step ran again after the restart, and only that step.
    expect(after.slice(0, 3).map(steps)).toEqual(
      Array(3).fill({
        VALIDATE_USER: 'SUCCEEDED',
        RESERVE_STOCK: 'SUCCEEDED',
        CHARGE_PAYMENT: 'SUCCEEDED',
        CONFIRM_ORDER: 'SUCCEEDED',
      }),
    );
    // Counted from the snapshot taken just before the kill: a call held long enough may have
    // been tried again before it (once the client's timeouts are spent the saga retries), but
    // after the restart each interrupted step runs exactly once more.
    const ranAgain = (index: number, step: string) =>
      (attempts(after[index]!, step) ?? 0) - (attempts(before[index]!, step) ?? 0);
    expect([
      ranAgain(0, 'CHARGE_PAYMENT'),
      ranAgain(1, 'CHARGE_PAYMENT'),
      ranAgain(2, 'CONFIRM_ORDER'),
    ]).toEqual([1, 1, 1]);
    expect(after.map((o) => attempts(o, 'RESERVE_STOCK'))).toEqual([1, 1, 1, 1]);
    expect(steps(after[3]!)).toEqual({
      VALIDATE_USER: 'SUCCEEDED',
      RESERVE_STOCK: 'COMPENSATED',
      CHARGE_PAYMENT: 'FAILED',
      CONFIRM_ORDER: 'SKIPPED',
      RELEASE_STOCK: 'SUCCEEDED',
    });
    expect(ranAgain(3, 'RELEASE_STOCK')).toBe(1);
    expect(after[3]!.failureReason).toContain('declined');
    expect(after.slice(0, 3).map((o) => o.payment)).toEqual(
      after.slice(0, 3).map((o) => ({ status: 'CAPTURED', amountCents: o.totalCents, refundedCents: 0 })),
    );
    await expectConserved(after, 10);
  }, 60_000);

  it('while refunding a charge whose order could not be confirmed: refunded exactly once after the restart, and PaymentRefunded written once', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 1_505 });
    // The commit is refused for good, so the saga must refund; the refund reaches payments but
    // its reply never comes back before the kill.
    proxy.add({ field: 'commitReservation', action: { errorCode: 'RESERVATION_NOT_HELD' } });
    proxy.add({ field: 'voidCharge', action: 'hold-reply' });
    const id = await place(product.id, 3, 'tok_visa');
    await eventually(
      async () => proxy.held().map((h) => h.field),
      (fields) => fields.includes('voidCharge'),
    );
    const before = await orderById(id);
    expect(before.saga.state).toBe('COMPENSATING');
    expect(steps(before)).toEqual({
      VALIDATE_USER: 'SUCCEEDED',
      RESERVE_STOCK: 'SUCCEEDED',
      CHARGE_PAYMENT: 'SUCCEEDED',
      CONFIRM_ORDER: 'FAILED',
      REFUND_PAYMENT: 'RUNNING',
      RELEASE_STOCK: 'PENDING',
    });
    expect(processorRecordsOf(id).refunds).toHaveLength(1); // refunded, but orders never heard
    expect(before.payment?.status).toBe('REFUNDED');

    await killAndRestart();

    const [after] = await settled([id]);
    expect(after).toMatchObject({ status: 'CANCELLED', saga: { state: 'COMPENSATED' } });
    expect(steps(after!)).toEqual({
      VALIDATE_USER: 'SUCCEEDED',
      RESERVE_STOCK: 'COMPENSATED',
      CHARGE_PAYMENT: 'COMPENSATED',
      CONFIRM_ORDER: 'FAILED',
      REFUND_PAYMENT: 'SUCCEEDED',
      RELEASE_STOCK: 'SUCCEEDED',
    });
    // The refund ran once more after the restart (payments answered it was done), the release once.
    expect(attempts(after!, 'REFUND_PAYMENT')).toBe((attempts(before, 'REFUND_PAYMENT') ?? 0) + 1);
    expect(attempts(after!, 'RELEASE_STOCK')).toBe(1);
    expect(after!.payment).toEqual({ status: 'REFUNDED', amountCents: 3 * 1_505, refundedCents: 3 * 1_505 });
    expect(processorRecordsOf(id)).toMatchObject({ captures: [{}], refunds: [{}] });
    await expectConserved([after!], 10);
    // The refund was announced by the attempt that heard of it, after the restart: once.
    const written = await eventsWrittenFor(id);
    expect(written.map((e) => e.eventType)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentCaptured',
      'PaymentRefunded',
      'StockReleased',
      'OrderCancelled',
    ]);
    expect(written.map((e) => e.version)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(written[3]!.data).toMatchObject({ orderId: id, totalCents: 3 * 1_505 });
  }, 90_000);
});

describe('orders replicas in the test process, their siblings behind the proxy', () => {
  const resources: (() => Promise<unknown>)[] = [];
  afterAll(async () => {
    for (const dispose of resources.reverse()) await dispose();
  });

  /** Two handles on one orders database, as two replicas of the service would have. */
  let embedded: PGlite | undefined;
  async function sharedDatabase(name: string): Promise<[Database, Database]> {
    const schema = `${schemaPrefix}orders_${name}`;
    const url = system.config.DATABASE_URL;
    if (url) {
      const [a, b] = [createPostgresDatabase({ url, schema }), createPostgresDatabase({ url, schema })];
      resources.push(async () => {
        await Promise.all([a.close(), b.close()]);
        const admin = createPostgresDatabase({ url, schema: 'public' });
        await admin.exec(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await admin.close();
      });
      return [a, b];
    }
    if (!embedded) {
      const created = await createEmbeddedPostgres(':memory:');
      resources.push(() => created.close());
      embedded = created;
    }
    const pglite = embedded;
    return [
      createPgliteDatabase({ pglite, schema, ownsInstance: false }),
      createPgliteDatabase({ pglite, schema, ownsInstance: false }),
    ];
  }

  async function startReplica(db: Database): Promise<Service> {
    const replica = createOrdersService(
      {
        config: { ...system.config, ORDER_SAGA_LEASE_MS: LEASE_MS, ORDER_SAGA_WAIT_MS: 0 },
        db,
        logger: createLogger({ level: 'silent', service: 'orders' }),
        secrets: { jwtSecret: secrets.JWT_SECRET, serviceSecret: secrets.SERVICE_SECRET },
        stream: system.stream,
        queue: system.queue,
        observability: createObservability({ service: 'orders', config: system.config }),
      },
      {
        siblings: {
          users: proxy.urlFor('users'),
          products: proxy.urlFor('products'),
          payments: proxy.urlFor('payments'),
        },
      },
    );
    await replica.start({ port: 0, host: '127.0.0.1' });
    resources.push(() => replica.stop());
    return replica;
  }

  /** placeOrder sent to one replica, signed as the gateway signs it for the customer. */
  async function placeAt(replica: Service, productId: string, quantity: number): Promise<string> {
    const credentials = createServiceCredentials({
      secret: secrets.SERVICE_SECRET,
      ttlSeconds: 60,
      service: 'gateway',
    });
    const response = await postGraphQL<{ placeOrder: { id: string } }>(
      replica.url!,
      { query: PLACE, variables: { input: { items: [{ productId, quantity }], paymentToken: 'tok_visa' } } },
      { 'x-service-credential': await credentials.sign({ id: customer.id, role: Role.CUSTOMER }) },
    );
    expect(response.errors).toBeUndefined();
    return response.data!.placeOrder.id;
  }

  const sagaOf = async (db: Database, id: string) => {
    const [order] = await db.query<{ status: string; saga_state: string }>(
      'SELECT status, saga_state FROM orders WHERE id = $1',
      [id],
    );
    const steps = await db.query<{ name: string; status: string; attempts: number; started_at: Date }>(
      'SELECT name, status, attempts, started_at FROM saga_steps WHERE order_id = $1 ORDER BY position',
      [id],
    );
    return { ...order!, steps };
  };

  it('a saga another replica runs is left to it; one whose replica died is taken over once its lease lapses', async () => {
    const [dbA, dbB] = await sharedDatabase('replicas');
    const replicaA = await startReplica(dbA);
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 1_606 });
    proxy.add({ field: 'chargePayment', when: (v) => chargeAmount(v) === 1_606, action: 'hold-request' });
    const running = await placeAt(replicaA, product.id, 1);
    await eventually(
      async () => proxy.held().filter((h) => h.field === 'chargePayment').length,
      (count) => count === 1,
    );
    // B starts while A runs the saga, and looks for lapsed leases every third of a lease.
    await startReplica(dbB);
    await delay(2 * LEASE_MS); // A's lease would have lapsed, had A not renewed it
    const charges = () =>
      proxy.seen().filter((r) => r.field === 'chargePayment' && chargeAmount(r.variables) === 1_606);
    expect(charges()).toHaveLength(1);
    expect((await sagaOf(dbB, running)).steps.map((s) => [s.name, s.status, s.attempts])).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED', 1],
      ['RESERVE_STOCK', 'SUCCEEDED', 1],
      ['CHARGE_PAYMENT', 'RUNNING', 1],
      ['CONFIRM_ORDER', 'PENDING', 0],
    ]);
    proxy.releaseAll();
    const done = await eventually(
      () => sagaOf(dbA, running),
      (saga) => saga.status !== 'PENDING',
    );
    expect(done).toMatchObject({ status: 'CONFIRMED', saga_state: 'COMPLETED' });
    expect(done.steps.every((step) => step.attempts === 1)).toBe(true);
    expect(charges()).toHaveLength(1);

    // A replica that recorded an order and died before running it: its lease must lapse first.
    const dead = createSagaStore(dbA, { owner: 'killed-replica', leaseMs: LEASE_MS });
    const { id: orphan } = await dead.record({
      userId: customer.id,
      items: [{ productId: product.id, quantity: 2, unitPriceCents: 1_606 }],
      paymentToken: 'tok_visa',
      idempotencyKey: null,
      fingerprint: 'orphan',
    });
    const [lease] = await dbA.query<{ saga_lease_until: Date }>(
      'SELECT saga_lease_until FROM orders WHERE id = $1',
      [orphan],
    );
    const takenOver = await eventually(
      () => sagaOf(dbB, orphan),
      (saga) => saga.status !== 'PENDING',
    );
    expect(takenOver).toMatchObject({ status: 'CONFIRMED', saga_state: 'COMPLETED' });
    expect(takenOver.steps[0]!.started_at.getTime()).toBeGreaterThanOrEqual(
      lease!.saga_lease_until.getTime(),
    );
    expect(processorRecordsOf(orphan).captures).toHaveLength(1);
    expect(await stockOf(product.id)).toEqual({ stock: 7, available: 7 });
  }, 60_000);

  it('a reservation that expires before the commit: the charge is refunded, and StockReleased says it expired', async () => {
    const events: EventEnvelope[] = [];
    const subscription = await recordOrderEvents(system, events);
    resources.push(() => subscription.stop());
    const [db] = await sharedDatabase('expiry');
    const replica = await startReplica(db);
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 1_707 });
    proxy.add({ field: 'commitReservation', action: 'hold-request' });
    const id = await placeAt(replica, product.id, 1);
    await eventually(
      async () => proxy.held().map((h) => h.field),
      (fields) => fields.includes('commitReservation'),
    );
    // The saga stalled past the reservation's deadline (15 min by default).
    await system.subgraphs.products.db.query(
      'UPDATE reservations SET expires_at = now() WHERE order_id = $1',
      [id],
    );
    proxy.releaseAll();
    const done = await eventually(
      () => sagaOf(db, id),
      (saga) => saga.status !== 'PENDING',
    );
    expect(done).toMatchObject({ status: 'CANCELLED', saga_state: 'COMPENSATED' });
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 10 });
    expect(processorRecordsOf(id)).toMatchObject({ captures: [{}], refunds: [{}] });
    const published = await eventually(
      async () => events.filter((e) => e.aggregateId === id),
      (list) => list.some((e) => e.eventType === 'OrderCancelled'),
    );
    expect(published.map((e) => e.eventType)).toEqual([
      'OrderPlaced',
      'StockReserved',
      'PaymentCaptured',
      'PaymentRefunded',
      'StockReleased',
      'OrderCancelled',
    ]);
    expect((published[4]!.data as { reason?: string }).reason).toMatch(/expired/);
  }, 60_000);
  it('after the upgrade, a saga that had ended FAILED with its refund and release undone compensates again, until done', async () => {
    const [db] = await sharedDatabase('upgrade');
    // The orders schema as it was before compensation was retried (migrations 001-003).
    const before = mkdtempSync(join(tmpdir(), 'orders-migrations-'));
    resources.push(async () => rmSync(before, { recursive: true, force: true }));
    const migrations = fileURLToPath(new URL('../subgraphs/orders/migrations/', import.meta.url));
    for (const file of ['001_orders.sql', '002_saga.sql', '003_saga_lease.sql']) {
      copyFileSync(join(migrations, file), join(before, file));
    }
    await migrate(db, [{ component: 'orders', dir: before }, outboxMigrations]);

    // A paid order whose commit was refused, then whose refund and release failed once: the old
    // saga ended it CANCELLED and FAILED, with the money captured and the units held.
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 1_808 });
    const orderId = randomUUID();
    const asOrders = async <T>(url: string, query: string, input: Record<string, unknown>) => {
      const credential = await createServiceCredentials({
        secret: secrets.SERVICE_SECRET,
        ttlSeconds: 60,
        service: 'orders',
      }).sign(null);
      const response = await postGraphQL<T>(
        url,
        { query, variables: { input } },
        { [SERVICE_CREDENTIAL_HEADER]: credential },
      );
      expect(response.errors).toBeUndefined();
      return response.data!;
    };
    const reserved = await asOrders<{ reserveStock: { status: string } }>(
      system.subgraphs.products.url,
      'mutation($input: ReserveStockInput!) { reserveStock(input: $input) { status } }',
      {
        idempotencyKey: `${orderId}:reserve-stock`,
        orderId,
        items: [{ productId: product.id, quantity: 2 }],
      },
    );
    const charged = await asOrders<{ chargePayment: { status: string } }>(
      system.subgraphs.payments.url,
      'mutation($input: ChargePaymentInput!) { chargePayment(input: $input) { status } }',
      {
        idempotencyKey: `${orderId}:charge`,
        orderId,
        userId: customer.id,
        amountCents: 2 * 1_808,
        paymentToken: 'tok_visa',
      },
    );
    expect([reserved.reserveStock.status, charged.chargePayment.status]).toEqual(['HELD', 'CAPTURED']);
    const at = new Date();
    const step = (name: string, status: 'SUCCEEDED' | 'FAILED', error: string | null = null) => ({
      name,
      status,
      attempts: 1,
      error,
      startedAt: at,
      finishedAt: at,
    });
    await createOrderStore(db).create({
      id: orderId,
      userId: customer.id,
      status: 'CANCELLED',
      failureReason: 'products: reservation is EXPIRED, not HELD',
      sagaState: 'FAILED',
      items: [{ productId: product.id, quantity: 2, unitPriceCents: 1_808 }],
      steps: [
        step('VALIDATE_USER', 'SUCCEEDED'),
        step('RESERVE_STOCK', 'SUCCEEDED'),
        step('CHARGE_PAYMENT', 'SUCCEEDED'),
        step('CONFIRM_ORDER', 'FAILED', 'products: reservation is EXPIRED, not HELD'),
      ],
    });
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 8 });

    const events: EventEnvelope[] = [];
    const subscription = await recordOrderEvents(system, events);
    resources.push(() => subscription.stop());
    await startReplica(db); // migrates to the current schema, then resumes what is in flight

    const done = await eventually(
      () => sagaOf(db, orderId),
      (saga) => saga.saga_state !== 'COMPENSATING' && saga.saga_state !== 'FAILED',
    );
    expect(done).toMatchObject({ status: 'CANCELLED', saga_state: 'COMPENSATED' });
    expect(done.steps.map((s) => [s.name, s.status])).toEqual([
      ['VALIDATE_USER', 'SUCCEEDED'],
      ['RESERVE_STOCK', 'COMPENSATED'],
      ['CHARGE_PAYMENT', 'COMPENSATED'],
      ['CONFIRM_ORDER', 'FAILED'],
      ['REFUND_PAYMENT', 'SUCCEEDED'],
      ['RELEASE_STOCK', 'SUCCEEDED'],
    ]);
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 10 });
    expect(processorRecordsOf(orderId)).toMatchObject({ captures: [{}], refunds: [{}] });
    // The refund and the release are announced; the cancellation was, back then, and is not again.
    const published = await eventually(
      async () => events.filter((e) => e.aggregateId === orderId),
      (list) => list.some((e) => e.eventType === 'StockReleased'),
    );
    await delay(200);
    expect(events.filter((e) => e.aggregateId === orderId).map((e) => e.eventType)).toEqual([
      'PaymentRefunded',
      'StockReleased',
    ]);
    expect(published[0]!.data).toMatchObject({ orderId, status: 'CANCELLED' });
  }, 60_000);
});
