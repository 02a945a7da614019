import { createClient, type Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { eventually } from './support/eventually.ts';
import { ADMIN, createProduct, logIn, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { subscribe, type Subscription } from './support/subgraphSubscriptions.ts';

/**
 * The acceptance tests for subscriptions, end to end: clients subscribe at the gateway's
 * URL over graphql-ws, the gateway subscribes to the owning subgraph (analytics, orders) and
 * resolves each event's entity fields from the other subgraphs (products, users).
 */
interface Metrics {
  salesMetricsUpdated: {
    totalOrders: number;
    revenueCents: number;
    topProducts: { product: { name: string }; unitsSold: number }[];
  };
}
interface StatusChange {
  orderStatusChanged: {
    id: string;
    status: string;
    user: { email: string };
    items: { quantity: number; product: { name: string } }[];
  };
}

const SALES = `subscription Sales {
  salesMetricsUpdated { totalOrders revenueCents topProducts(limit: 100) { product { name } unitsSold } }
}`;
const STATUS = `subscription Status {
  orderStatusChanged { id status user { email } items { quantity product { name } } }
}`;

let system: TestSystem;
let adminToken: string;
let product: { id: string };
const productName = `Federated Lamp ${Date.now().toString(36)}`;
const clients: Client[] = [];

function gatewayClient(token?: string): Client {
  const client = createClient({
    url: system.gatewayUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: token ? { authorization: `Bearer ${token}` } : {},
    retryAttempts: 0,
    lazy: true,
  });
  clients.push(client);
  return client;
}

async function placeOrder(token: string, paymentToken: string, quantity = 1): Promise<string> {
  const response = await system.graphql<{ placeOrder: { id: string } }>(
    'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id } }',
    { input: { items: [{ productId: product.id, quantity }], paymentToken } },
    token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.placeOrder.id;
}

async function gatewayMetric(name: string): Promise<number> {
  const text = await fetch(new URL('/metrics', system.gatewayUrl)).then((r) => r.text());
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : NaN;
}

/** Every subscription gets the current figures at once: waits until each has had them. */
async function untilCurrent(subscriptions: Subscription<Metrics>[]) {
  await eventually(
    async () => subscriptions.filter((s) => s.values.length === 0).length,
    (waiting) => waiting === 0,
  );
}

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  product = await createProduct(system, adminToken, { name: productName, priceCents: 2_500, stock: 1_000 });
}, 60_000);
afterEach(async () => {
  await Promise.all(clients.splice(0).map(async (client) => client.dispose()));
});
afterAll(async () => {
  await system?.stop();
});

describe('subscriptions through the gateway (graphql-ws)', () => {
  it('salesMetricsUpdated moves with placed orders, with product names resolved from products', async () => {
    const sales = subscribe<Metrics>(gatewayClient(adminToken), SALES);
    const customer = await signUp(system, 'Federica');
    await untilCurrent([sales]);
    const before = sales.values.at(-1)!.salesMetricsUpdated;
    await placeOrder(customer.token, 'tok_visa', 2);
    await placeOrder(customer.token, 'tok_visa', 1);

    const after = await eventually(
      async () => sales.values.at(-1)!.salesMetricsUpdated,
      // Revenue and units count on confirmation, which follows placement.
      (m) => m.topProducts.find((p) => p.product.name === productName)?.unitsSold === 3,
    );
    // At least: a warm-up order may still have been on its way when `before` was read.
    expect(after.totalOrders - before.totalOrders).toBeGreaterThanOrEqual(2);
    expect(after.revenueCents - before.revenueCents).toBe(3 * 2_500);
    expect(sales.errors).toEqual([]);
  });

  it('orderStatusChanged delivers PENDING then CONFIRMED or CANCELLED, with user and product fields', async () => {
    const customer = await signUp(system, 'Stella');
    const status = subscribe<StatusChange>(gatewayClient(customer.token), STATUS);
    // Nothing acknowledges that the upstream subscription is live: place orders until one shows.
    await eventually(
      async () => {
        if (status.values.length === 0) await placeOrder(customer.token, 'tok_visa');
        return status.values.length;
      },
      (n) => n > 0,
      { intervalMs: 500 },
    );
    const confirmed = await placeOrder(customer.token, 'tok_visa');
    const declined = await placeOrder(customer.token, 'tok_declined');
    const of = (id: string) => status.values.map((v) => v.orderStatusChanged).filter((o) => o.id === id);
    await eventually(
      async () => [of(confirmed).length, of(declined).length],
      ([a, b]) => a! >= 2 && b! >= 2,
    );
    expect(of(confirmed).map((o) => o.status)).toEqual(['PENDING', 'CONFIRMED']);
    expect(of(declined).map((o) => o.status)).toEqual(['PENDING', 'CANCELLED']);
    for (const order of [...of(confirmed), ...of(declined)]) {
      expect(order.user.email).toBe(customer.email);
      expect(order.items).toEqual([{ quantity: 1, product: { name: productName } }]);
    }
    expect(status.errors).toEqual([]);
  });

  it('refuses salesMetricsUpdated to anonymous (UNAUTHENTICATED) and customer (FORBIDDEN) subscribers', async () => {
    const customer = await signUp(system, 'Nosy');
    const anonymous = subscribe<Metrics>(gatewayClient(), SALES);
    const nonAdmin = subscribe<Metrics>(gatewayClient(customer.token), SALES);
    await Promise.all([anonymous.ended, nonAdmin.ended]);
    const codes = (s: Subscription<Metrics>) => s.errors.map((e) => e.extensions?.['code']);
    expect(anonymous.values).toEqual([]);
    expect(codes(anonymous)).toContain('UNAUTHENTICATED');
    expect(nonAdmin.values).toEqual([]);
    expect(codes(nonAdmin)).toContain('FORBIDDEN');
  });

  it('every new subscriber gets the current figures at once, a late joiner of a shared upstream too', async () => {
    // Orders of earlier tests may still be on their way to analytics: figures that hold still.
    const query = async () =>
      JSON.stringify(
        (
          await system.graphql<{ salesMetrics: Metrics['salesMetricsUpdated'] }>(
            `{ salesMetrics { totalOrders revenueCents topProducts(limit: 100) { product { name } unitsSold } } }`,
            {},
            adminToken,
          )
        ).data?.salesMetrics,
      );
    const [current] = await eventually(
      async () => [await query(), await new Promise((r) => setTimeout(r, 500)).then(query)],
      ([before, after]) => before === after,
    );
    const first = subscribe<Metrics>(gatewayClient(adminToken), SALES);
    await untilCurrent([first]);
    // No order placed meanwhile: the figures as they stand.
    expect(first.values).toHaveLength(1);
    expect(JSON.stringify(first.values[0]?.salesMetricsUpdated)).toBe(current);

    const late = subscribe<Metrics>(gatewayClient(adminToken), SALES);
    await untilCurrent([late]);
    expect(late.values).toEqual(first.values);
    expect(await gatewayMetric('gateway_upstream_subscriptions')).toBe(1);
    expect([...first.errors, ...late.errors]).toEqual([]);
  });

  it('200 identical subscribers share one upstream subscription, and every one sees the update', async () => {
    // 200 clients, each on its own connection, as 200 dashboards would be.
    const subscribers = Array.from({ length: 200 }, () =>
      subscribe<Metrics>(gatewayClient(adminToken), SALES),
    );
    const customer = await signUp(system, 'Crowd');
    await untilCurrent(subscribers);
    expect(await gatewayMetric('gateway_subscriptions')).toBe(200);
    expect(await gatewayMetric('gateway_upstream_subscriptions')).toBe(1);

    const total = Math.max(...subscribers.map((s) => s.values.at(-1)!.salesMetricsUpdated.totalOrders));
    await placeOrder(customer.token, 'tok_visa');
    await eventually(
      async () =>
        subscribers.filter((s) => s.values.some((v) => v.salesMetricsUpdated.totalOrders > total)).length,
      (n) => n === 200,
    );
    for (const subscriber of subscribers) subscriber.unsubscribe();
    await eventually(
      () => gatewayMetric('gateway_upstream_subscriptions'),
      (n) => n === 0,
    );
  });
});
