import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSupergraphConfig } from '../gateway/src/supergraph/composeSupergraph.ts';
import { createServiceCredentials, SERVICE_CREDENTIAL_HEADER, type Viewer } from '../lib/auth/tokens.ts';
import { ADMIN, createProduct, expectCode, logIn } from './support/fixtures.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';

interface Reservation {
  id: string;
  status: string;
  reason: string | null;
  orderId: string | null;
  totalCents: number;
  items: { product: { id: string }; quantity: number; unitPriceCents: number }[];
}

const RESERVATION_FIELDS =
  'id status reason orderId totalCents items { product { id } quantity unitPriceCents }';
const RESERVE = `mutation($input: ReserveStockInput!) { reserveStock(input: $input) { ${RESERVATION_FIELDS} } }`;
const RELEASE = `mutation($id: ID, $key: String) { releaseReservation(id: $id, idempotencyKey: $key) { ${RESERVATION_FIELDS} } }`;
const COMMIT = `mutation($id: ID!) { commitReservation(id: $id) { ${RESERVATION_FIELDS} } }`;

let system: TestSystem;
let adminToken: string;

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
});
afterAll(() => system?.stop());

/** Calls the products subgraph directly, as `service` would (the orders saga by default). */
async function callProducts<T>(
  query: string,
  variables: Record<string, unknown>,
  { service = 'orders', viewer = null }: { service?: string; viewer?: Viewer | null } = {},
) {
  const credential = await createServiceCredentials({
    secret: system.secrets.serviceSecret,
    ttlSeconds: 60,
    service,
  }).sign(viewer);
  return postGraphQL<T>(
    system.subgraphs.products.url,
    { query, variables },
    {
      [SERVICE_CREDENTIAL_HEADER]: credential,
    },
  );
}

async function reserve(
  items: { productId: string; quantity: number }[],
  {
    key = randomUUID(),
    orderId = randomUUID(),
    ttlSeconds,
  }: { key?: string; orderId?: string; ttlSeconds?: number } = {},
) {
  return callProducts<{ reserveStock: Reservation }>(RESERVE, {
    input: { idempotencyKey: key, orderId, items, ...(ttlSeconds ? { ttlSeconds } : {}) },
  });
}

async function reserved(
  items: { productId: string; quantity: number }[],
  options?: Parameters<typeof reserve>[1],
) {
  const response = await reserve(items, options);
  expect(response.errors).toBeUndefined();
  return response.data!.reserveStock;
}

async function stockOf(productId: string) {
  const response = await system.graphql<{ product: { stock: number; available: number } }>(
    'query($id: ID!) { product(id: $id) { stock available } }',
    { id: productId },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.product;
}

describe('reserving stock', () => {
  it('a reservation holds units: available drops, stock stays, prices are captured', async () => {
    const product = await createProduct(system, adminToken, { stock: 10, priceCents: 700 });
    const reservation = await reserved([{ productId: product.id, quantity: 3 }]);
    expect(reservation).toMatchObject({
      status: 'HELD',
      reason: null,
      totalCents: 2_100,
      items: [{ product: { id: product.id }, quantity: 3, unitPriceCents: 700 }],
    });
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 7 });
  });

  it('releasing a reservation gives its units back, and releasing it again changes nothing', async () => {
    const product = await createProduct(system, adminToken, { stock: 4 });
    const reservation = await reserved([{ productId: product.id, quantity: 4 }]);
    expect(await stockOf(product.id)).toEqual({ stock: 4, available: 0 });
    for (let i = 0; i < 2; i++) {
      const response = await callProducts<{ releaseReservation: Reservation }>(RELEASE, {
        id: reservation.id,
      });
      expect(response.errors).toBeUndefined();
      expect(response.data?.releaseReservation.status).toBe('RELEASED');
    }
    expect(await stockOf(product.id)).toEqual({ stock: 4, available: 4 });
  });

  it('committing a reservation sells its units: stock drops, and a second commit changes nothing', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const reservation = await reserved([{ productId: product.id, quantity: 2 }]);
    for (let i = 0; i < 2; i++) {
      const response = await callProducts<{ commitReservation: Reservation }>(COMMIT, { id: reservation.id });
      expect(response.errors).toBeUndefined();
      expect(response.data?.commitReservation.status).toBe('COMMITTED');
    }
    expect(await stockOf(product.id)).toEqual({ stock: 8, available: 8 });
  });

  it('a committed reservation cannot be released, nor a released one committed', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const committed = await reserved([{ productId: product.id, quantity: 1 }]);
    await callProducts(COMMIT, { id: committed.id });
    expectCode(await callProducts(RELEASE, { id: committed.id }), 'RESERVATION_NOT_HELD');

    const released = await reserved([{ productId: product.id, quantity: 1 }]);
    await callProducts(RELEASE, { id: released.id });
    expectCode(await callProducts(COMMIT, { id: released.id }), 'RESERVATION_NOT_HELD');
    expect(await stockOf(product.id)).toEqual({ stock: 9, available: 9 });
  });

  it('the same idempotency key twice makes one reservation and holds the units once', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const options = { key: randomUUID(), orderId: randomUUID() };
    const items = [{ productId: product.id, quantity: 3 }];
    const [first, second] = await Promise.all([reserved(items, options), reserved(items, options)]);
    const third = await reserved(items, options);
    expect(second.id).toBe(first.id);
    expect(third.id).toBe(first.id);
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 7 });
  });

  it('the same idempotency key with other items is IDEMPOTENCY_CONFLICT', async () => {
    const product = await createProduct(system, adminToken, { stock: 10 });
    const options = { key: randomUUID(), orderId: randomUUID() };
    await reserved([{ productId: product.id, quantity: 1 }], options);
    expectCode(await reserve([{ productId: product.id, quantity: 2 }], options), 'IDEMPOTENCY_CONFLICT');
    expect(await stockOf(product.id)).toEqual({ stock: 10, available: 9 });
  });

  it('insufficient stock is a REJECTED reservation naming the SKU, and nothing is held', async () => {
    const plenty = await createProduct(system, adminToken, { stock: 10 });
    const scarce = await createProduct(system, adminToken, { stock: 1 });
    const items = [
      { productId: plenty.id, quantity: 2 },
      { productId: scarce.id, quantity: 2 },
    ];
    const options = { key: randomUUID(), orderId: randomUUID() };
    const rejected = await reserved(items, options);
    expect(rejected.status).toBe('REJECTED');
    expect(rejected.reason).toMatch(/insufficient stock/);
    expect(rejected.reason).toContain(scarce.sku);
    expect(await stockOf(plenty.id)).toEqual({ stock: 10, available: 10 });
    expect(await stockOf(scarce.id)).toEqual({ stock: 1, available: 1 });

    // A retry gets the recorded answer, even though the stock would now suffice.
    await system.graphql(
      'mutation($id: ID!) { restockProduct(id: $id, quantity: 5) { id } }',
      { id: scarce.id },
      adminToken,
    );
    expect(await reserved(items, options)).toMatchObject({ id: rejected.id, status: 'REJECTED' });
  });

  it('20 concurrent reservations for the last 5 units hold exactly 5 and never oversell', async () => {
    const product = await createProduct(system, adminToken, { stock: 5 });
    const results = await Promise.all(
      Array.from({ length: 20 }, () => reserved([{ productId: product.id, quantity: 1 }])),
    );
    const statuses = results.map((r) => r.status);
    expect(statuses.filter((s) => s === 'HELD')).toHaveLength(5);
    expect(statuses.filter((s) => s === 'REJECTED')).toHaveLength(15);
    expect(await stockOf(product.id)).toEqual({ stock: 5, available: 0 });
  });

  it('a reservation neither committed nor released in time expires and gives its units back', async () => {
    const product = await createProduct(system, adminToken, { stock: 3 });
    const reservation = await reserved([{ productId: product.id, quantity: 3 }], { ttlSeconds: 1 });
    expect(await stockOf(product.id)).toEqual({ stock: 3, available: 0 });
    await expect
      .poll(() => stockOf(product.id), { timeout: 8_000, interval: 200 })
      .toEqual({ stock: 3, available: 3 });
    const commit = await callProducts(COMMIT, { id: reservation.id });
    expectCode(commit, 'RESERVATION_NOT_HELD');
    expect(commit.errors?.[0]?.extensions?.['status']).toBe('EXPIRED');
  });

  it('a release by key that arrives before its reserve stops that reserve from holding anything', async () => {
    const product = await createProduct(system, adminToken, { stock: 2 });
    const key = randomUUID();
    const release = await callProducts<{ releaseReservation: Reservation }>(RELEASE, { key });
    expect(release.errors).toBeUndefined();
    expect(release.data?.releaseReservation.status).toBe('RELEASED');
    const late = await reserved([{ productId: product.id, quantity: 2 }], { key });
    expect(late.status).toBe('RELEASED');
    expect(await stockOf(product.id)).toEqual({ stock: 2, available: 2 });
  });
});

describe('reservation input and callers', () => {
  it('an unknown or malformed product is BAD_USER_INPUT, and so are empty items and quantity 0', async () => {
    const product = await createProduct(system, adminToken, { stock: 2 });
    expectCode(await reserve([{ productId: randomUUID(), quantity: 1 }]), 'BAD_USER_INPUT');
    expectCode(await reserve([{ productId: 'not-a-uuid', quantity: 1 }]), 'BAD_USER_INPUT');
    expectCode(await reserve([]), 'BAD_USER_INPUT');
    expectCode(await reserve([{ productId: product.id, quantity: 0 }]), 'BAD_USER_INPUT');
    expect(await stockOf(product.id)).toEqual({ stock: 2, available: 2 });
  });

  it('the gateway, even acting for an ADMIN, cannot reserve, release or commit: FORBIDDEN', async () => {
    const product = await createProduct(system, adminToken, { stock: 2 });
    const admin: Viewer = { id: randomUUID(), role: 'ADMIN' };
    const input = {
      idempotencyKey: randomUUID(),
      orderId: randomUUID(),
      items: [{ productId: product.id, quantity: 1 }],
    };
    for (const caller of [
      { service: 'gateway' },
      { service: 'gateway', viewer: admin },
      { service: 'payments' },
    ]) {
      expectCode(await callProducts(RESERVE, { input }, caller), 'FORBIDDEN');
      expectCode(await callProducts(RELEASE, { key: randomUUID() }, caller), 'FORBIDDEN');
      expectCode(await callProducts(COMMIT, { id: randomUUID() }, caller), 'FORBIDDEN');
    }
    expect(await stockOf(product.id)).toEqual({ stock: 2, available: 2 });
  });

  it('the composed public API exposes none of the reservation operations or types', async () => {
    const subgraphs = await readSupergraphConfig('supergraph.yaml');
    const result = composeServices(
      await Promise.all(
        subgraphs.map(async (s) => ({
          name: s.name,
          url: s.url,
          typeDefs: parse(await readFile(s.schemaFile, 'utf8')),
        })),
      ),
    );
    expect(result.errors).toBeUndefined();
    const api = result.schema!.toAPISchema().toGraphQLJSSchema();
    for (const type of ['Reservation', 'ReservationItem', 'ReservationStatus', 'ReserveStockInput']) {
      expect(api.getType(type), type).toBeUndefined();
    }
    const mutations = Object.keys(api.getMutationType()?.getFields() ?? {});
    expect(mutations).not.toContain('reserveStock');
    expect(mutations).not.toContain('releaseReservation');
    expect(mutations).not.toContain('commitReservation');
    expect(mutations).toContain('restockProduct');
  });
});
