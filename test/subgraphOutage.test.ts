import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createProduct, insertConfirmedOrder, logIn } from './support/fixtures.ts';
import { eventually } from './support/eventually.ts';
import { startObservedGateway, type ObservedGateway } from './support/startObservedGateway.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';

const ORDERS_ONLY = '{ me { orders { edges { node { id totalCents } } } } }';
const WITH_PRODUCTS = '{ me { orders { edges { node { id items { product { name } } } } } } }';

let system: TestSystem;
let token: string;

beforeAll(async () => {
  system = await startTestSystem({
    SUBGRAPH_TIMEOUT_MS: '1000',
    ORDER_SAGA_WAIT_MS: '500',
    SUBGRAPH_BREAKER_THRESHOLD: '2',
    SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS: '500',
  });
  token = await logIn(system, ADMIN.email, ADMIN.password);
  const product = await createProduct(system, token, { name: 'Outage widget' });
  const me = await system.graphql<{ me: { id: string } }>('{ me { id } }', {}, token);
  await insertConfirmedOrder(system, me.data!.me.id, [
    { productId: product.id, quantity: 1, unitPriceCents: product.priceCents },
  ]);
});
afterAll(() => system?.stop());

const gatewayRoot = () => new URL(system.gatewayUrl).origin;
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

    const needsProducts = await system.graphql(WITH_PRODUCTS, {}, token);
    expect(unavailable(needsProducts)?.extensions?.['serviceName']).toBe('products');
    expect(unavailable(needsProducts)?.message).toMatch(/products subgraph is unavailable/);

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

  it('its fields come back SERVICE_UNAVAILABLE at the timeout instead of hanging the gateway', async () => {
    observed.hang('products');
    const response = await postGraphQL(
      observed.url,
      { query: WITH_PRODUCTS },
      { authorization: `Bearer ${token}` },
    );
    expect(unavailable(response)?.extensions?.['serviceName']).toBe('products');
    expect(unavailable(response)?.message).toMatch(/no reply within 1000 ms/);
    const ordersOnly = await postGraphQL(
      observed.url,
      { query: ORDERS_ONLY },
      { authorization: `Bearer ${token}` },
    );
    expect(ordersOnly.errors).toBeUndefined();
    observed.hang('products', false);
  });
});
