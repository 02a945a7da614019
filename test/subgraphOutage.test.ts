import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertConfirmedOrder, mintAdminToken } from './support/fixtures.ts';
import { eventually } from './support/eventually.ts';
import { startObservedGateway, type ObservedGateway } from './support/startObservedGateway.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';

const ORDERS_ONLY = '{ me { orders { edges { node { id totalCents } } } } }';
const WITH_PRODUCTS = '{ me { orders { edges { node { id items { product { name } } } } } } }';
/** Products' own field here is nullable: an outage nulls it alone, not the whole order up to `me`. */
const DESCRIPTIONS =
  '{ me { orders { edges { node { id totalCents items { quantity product { id description } } } } } } }';
type Descriptions = {
  me: {
    orders: {
      edges: {
        node: {
          id: string;
          totalCents: number;
          items: { quantity: number; product: { id: string; description: string | null } }[];
        };
      }[];
    };
  };
};

let system: TestSystem;
let token: string;

beforeAll(async () => {
  system = await startTestSystem({
    SUBGRAPH_TIMEOUT_MS: '1000',
    ORDER_SAGA_WAIT_MS: '500',
    SUBGRAPH_BREAKER_THRESHOLD: '2',
    SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS: '500',
  });
  // Not logIn: its password hash can take longer than this test's 1 s subgraph timeout on a busy machine.
  token = await mintAdminToken(system);
  const created = await system.graphql<{ createProduct: { id: string; priceCents: number } }>(
    'mutation($input: CreateProductInput!) { createProduct(input: $input) { id priceCents } }',
    {
      input: {
        sku: `OUT-${Date.now()}`,
        name: 'Outage widget',
        description: 'Sturdy',
        priceCents: 1_250,
        stock: 10,
      },
    },
    token,
  );
  const product = created.data!.createProduct;
  const me = await system.graphql<{ me: { id: string } }>('{ me { id } }', {}, token);
  await insertConfirmedOrder(system, me.data!.me.id, [
    { productId: product.id, quantity: 1, unitPriceCents: product.priceCents },
  ]);
});
afterAll(() => system?.stop());

const gatewayRoot = () => new URL(system.gatewayUrl).origin;

/** Every item's product of the viewer's orders, as the answer has it. */
const productsIn = (response: { data?: Descriptions | null }) =>
  (response.data?.me.orders.edges ?? []).flatMap((edge) => edge.node.items.map((item) => item.product));

/** With products down: each product keeps its id (orders knows it), its own field is null. */
function expectProductFieldsNull(response: { data?: Descriptions | null }) {
  const products = productsIn(response);
  expect(products.length).toBeGreaterThan(0);
  for (const product of products) {
    expect(typeof product.id).toBe('string');
    expect(product.description).toBeNull();
  }
  // Orders' own fields still answer.
  for (const { node } of response.data?.me.orders.edges ?? []) expect(node.totalCents).toBeGreaterThan(0);
}
const unavailable = (response: { errors?: { extensions?: Record<string, unknown>; message: string }[] }) =>
  response.errors?.find((e) => e.extensions?.['code'] === 'SERVICE_UNAVAILABLE');

async function breakerOf(name: string, root = gatewayRoot()) {
  const body = (await (await fetch(`${root}/circuit-breakers`)).json()) as {
    breakers: { name: string; state: string; consecutiveFailures: number }[];
  };
  return body.breakers.find((b) => b.name === name);
}

describe('with the products subgraph stopped', () => {
  it('answers what does not need it, fails fast on what does, and heals once it is back', async () => {
    await system.subgraphs.products.service.stop();

    const ordersOnly = await system.graphql<{ me: { orders: { edges: { node: { id: string } }[] } } }>(
      ORDERS_ONLY,
      {},
      token,
    );
    expect(ordersOnly.errors).toBeUndefined();
    expect(ordersOnly.data?.me.orders.edges.length).toBeGreaterThan(0);

    const needsProducts = await system.graphql<Descriptions>(DESCRIPTIONS, {}, token);
    expect(unavailable(needsProducts)?.extensions?.['serviceName']).toBe('products');
    expect(unavailable(needsProducts)?.message).toMatch(/products subgraph is unavailable/);
    expectProductFieldsNull(needsProducts);

    // Two failures in a row open the circuit: the next call fails at once, saying so.
    await system.graphql(WITH_PRODUCTS, {}, token);
    expect((await breakerOf('products'))?.state).toBe('open');
    expect(await fetch(`${gatewayRoot()}/metrics`).then((r) => r.text())).toMatch(
      /^gateway_circuit_breaker_state\{[^}]*subgraph="products"[^}]*\} 2$/m,
    );
    expect(unavailable(await system.graphql(WITH_PRODUCTS, {}, token))?.message).toMatch(/circuit is open/);

    const status = (await (await fetch(`${gatewayRoot()}/services/status`)).json()) as {
      status: string;
      subgraphs: { name: string; ready: boolean; breaker: string }[];
    };
    expect(status.status).toBe('degraded');
    expect(status.subgraphs.find((s) => s.name === 'products')).toMatchObject({
      ready: false,
      breaker: 'open',
    });
    expect(status.subgraphs.find((s) => s.name === 'users')).toMatchObject({
      ready: true,
      breaker: 'closed',
    });

    await system.restart('products');
    // The breaker lets a trial call through after its half-open delay, and closes on success.
    const whole = await eventually(
      () =>
        system.graphql<{ me: { orders: { edges: { node: { items: { product: { name: string } }[] } }[] } } }>(
          WITH_PRODUCTS,
          {},
          token,
        ),
      (response) => response.errors === undefined,
    );
    expect(whole.data?.me.orders.edges[0]?.node.items[0]?.product.name).toBe('Outage widget');
    expect((await breakerOf('products'))?.state).toBe('closed');
    expect(await fetch(`${gatewayRoot()}/metrics`).then((r) => r.text())).toMatch(
      /^gateway_circuit_breaker_state\{[^}]*subgraph="products"[^}]*\} 0$/m,
    );
  });
});

describe('with a subgraph that takes requests and never answers', () => {
  let observed: ObservedGateway;
  beforeAll(async () => {
    observed = await startObservedGateway(system);
  });
  afterAll(() => observed?.stop());

  it('its fields come back null with SERVICE_UNAVAILABLE at the timeout instead of hanging the gateway', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const healthy = await postGraphQL<Descriptions>(observed.url, { query: DESCRIPTIONS }, auth);
    expect(productsIn(healthy).map((p) => p.description)).toContain('Sturdy');

    observed.hang('products');
    const started = performance.now();
    const response = await postGraphQL<Descriptions>(observed.url, { query: DESCRIPTIONS }, auth);
    const elapsedMs = performance.now() - started;
    expect(unavailable(response)?.extensions?.['serviceName']).toBe('products');
    expect(unavailable(response)?.message).toMatch(/no reply within 1000 ms/);
    expectProductFieldsNull(response);
    // Answered at the configured deadline, not whenever the hung subgraph might reply. The margin
    // covers the query's other fetches (orders, before products is asked) on a busy machine.
    expect(elapsedMs).toBeLessThan(system.config.SUBGRAPH_TIMEOUT_MS + 2_000);

    const ordersOnly = await postGraphQL(observed.url, { query: ORDERS_ONLY }, auth);
    expect(ordersOnly.errors).toBeUndefined();
    observed.hang('products', false);
  });
});
