import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceCredentials, createUserTokens, SERVICE_CREDENTIAL_HEADER } from '../lib/auth/tokens.ts';
import { ADMIN, createProduct, expectCode, insertConfirmedOrder, logIn, signUp } from './support/fixtures.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';

let system: TestSystem;
let adminToken: string;
let alice: Awaited<ReturnType<typeof signUp>>;
let bob: Awaited<ReturnType<typeof signUp>>;
let aliceOrderId: string;
let alicePaymentId: string;

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
  alice = await signUp(system, 'Alice');
  bob = await signUp(system, 'Bob');
  const product = await createProduct(system, adminToken);
  aliceOrderId = (
    await insertConfirmedOrder(system, alice.id, [
      { productId: product.id, quantity: 1, unitPriceCents: 500 },
    ])
  ).id;
  const payment = await system.graphql<{ order: { payment: { id: string } } }>(
    'query($id: ID!) { order(id: $id) { payment { id } } }',
    { id: aliceOrderId },
    alice.token,
  );
  alicePaymentId = payment.data!.order.payment.id;
});
afterAll(() => system?.stop());

describe('orders and payments: owner or ADMIN', () => {
  it('the owner sees their order and its payment', async () => {
    const response = await system.graphql<{ order: { id: string; payment: { id: string } } }>(
      'query($id: ID!) { order(id: $id) { id payment { id } } }',
      { id: aliceOrderId },
      alice.token,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.order.id).toBe(aliceOrderId);
  });

  it("another user's order is FORBIDDEN", async () => {
    const response = await system.graphql(
      'query($id: ID!) { order(id: $id) { id } }',
      { id: aliceOrderId },
      bob.token,
    );
    expectCode(response, 'FORBIDDEN');
    expect(response.data?.['order']).toBeNull();
  });

  it("another user's payment is FORBIDDEN", async () => {
    const response = await system.graphql(
      'query($id: ID!) { payment(id: $id) { id } }',
      { id: alicePaymentId },
      bob.token,
    );
    expectCode(response, 'FORBIDDEN');
  });

  it("another user's profile is FORBIDDEN", async () => {
    const profile = await system.graphql(
      'query($id: ID!) { user(id: $id) { email } }',
      { id: alice.id },
      bob.token,
    );
    expectCode(profile, 'FORBIDDEN');
  });

  it('an ADMIN sees any order, payment and user', async () => {
    const response = await system.graphql<{
      order: { user: { email: string } };
      payment: { amountCents: number };
      user: { orders: { edges: unknown[] } };
    }>(
      'query($o: ID!, $p: ID!, $u: ID!) { order(id: $o) { user { email } } payment(id: $p) { amountCents } user(id: $u) { orders { edges { cursor } } } }',
      { o: aliceOrderId, p: alicePaymentId, u: alice.id },
      adminToken,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data?.order.user.email).toBe(alice.email);
    expect(response.data?.payment.amountCents).toBe(500);
    expect(response.data?.user.orders.edges).toHaveLength(1);
  });

  it('an unknown order is null, and a malformed id is null too (not a database error)', async () => {
    const response = await system.graphql(
      '{ a: order(id: "00000000-0000-4000-8000-00000000ffff") { id } b: order(id: "not-a-uuid") { id } }',
      {},
      adminToken,
    );
    expect(response.errors).toBeUndefined();
    expect(response.data).toEqual({ a: null, b: null });
  });
});

describe('no token, bad tokens', () => {
  it('an order without a token is UNAUTHENTICATED', async () => {
    const response = await system.graphql('query($id: ID!) { order(id: $id) { id } }', { id: aliceOrderId });
    expectCode(response, 'UNAUTHENTICATED');
  });

  it('a garbage, forged or expired token is UNAUTHENTICATED with HTTP 401', async () => {
    const forged = await createUserTokens({ secret: 'x'.repeat(48), ttlSeconds: 60 }).issue({
      id: alice.id,
      role: 'ADMIN',
    });
    const expired = await new SignJWT({ role: 'CUSTOMER' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(alice.id)
      .setIssuer('event-federation')
      .setAudience('event-federation:client')
      .setIssuedAt(Math.floor(Date.now() / 1000) - 120)
      .setExpirationTime(Math.floor(Date.now() / 1000) - 60)
      .sign(new TextEncoder().encode(system.secrets.jwtSecret));
    for (const token of ['garbage', forged, expired]) {
      const response = await system.graphql('{ me { id } }', {}, token);
      expect(response.status).toBe(401);
      expectCode(response, 'UNAUTHENTICATED');
    }
    const response = await system.graphql('{ me { id } }', {}, expired);
    expect(response.errors?.[0]?.message).toMatch(/expired/);
  });

  it('a CUSTOMER calling an ADMIN mutation is FORBIDDEN and nothing is created', async () => {
    const response = await system.graphql(
      'mutation { createProduct(input: { sku: "HACK-1", name: "x", priceCents: 1, stock: 1 }) { id } }',
      {},
      alice.token,
    );
    expectCode(response, 'FORBIDDEN');
    const search = await system.graphql<{ products: { edges: unknown[] } }>(
      '{ products(search: "HACK-1") { edges { cursor } } }',
    );
    expect(search.data?.products.edges).toEqual([]);
  });

  it('an anonymous ADMIN mutation is UNAUTHENTICATED', async () => {
    const response = await system.graphql(
      'mutation { restockProduct(id: "00000000-0000-4000-8000-000000000101", quantity: 1) { id } }',
    );
    expectCode(response, 'UNAUTHENTICATED');
  });
});

describe('subgraphs trust only signed calls', () => {
  const query = { query: '{ me { id email } }' };

  it('a direct call without the service credential is UNAUTHENTICATED', async () => {
    for (const { url } of Object.values(system.subgraphs)) {
      const response = await postGraphQL(url, { query: '{ __typename }' });
      expect(response.status).toBe(401);
      expectCode(response, 'UNAUTHENTICATED');
    }
  });

  it("a client's own user token in the credential header is not accepted", async () => {
    const response = await postGraphQL(system.subgraphs.users.url, query, {
      [SERVICE_CREDENTIAL_HEADER]: alice.token,
      authorization: `Bearer ${alice.token}`,
    });
    expectCode(response, 'UNAUTHENTICATED');
  });

  it('a credential signed with another secret is UNAUTHENTICATED', async () => {
    const credential = await createServiceCredentials({
      secret: 'y'.repeat(48),
      ttlSeconds: 60,
      service: 'gateway',
    }).sign({ id: alice.id, role: 'ADMIN' });
    const response = await postGraphQL(system.subgraphs.users.url, query, {
      [SERVICE_CREDENTIAL_HEADER]: credential,
    });
    expectCode(response, 'UNAUTHENTICATED');
  });

  it("a correctly signed credential carries the viewer's identity", async () => {
    const credential = await createServiceCredentials({
      secret: system.secrets.serviceSecret,
      ttlSeconds: 60,
      service: 'orders',
    }).sign({ id: alice.id, role: 'CUSTOMER' });
    const response = await postGraphQL<{ me: { id: string } }>(system.subgraphs.users.url, query, {
      [SERVICE_CREDENTIAL_HEADER]: credential,
    });
    expect(response.errors).toBeUndefined();
    expect(response.data?.me.id).toBe(alice.id);
  });

  it('a client cannot smuggle a credential header through the gateway', async () => {
    const response = await postGraphQL<{ me: null }>(system.gatewayUrl, query, {
      [SERVICE_CREDENTIAL_HEADER]: 'anything',
    });
    expect(response.errors).toBeUndefined();
    expect(response.data?.me).toBeNull();
  });
});
