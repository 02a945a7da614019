import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createProduct, expectCode, logIn, signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

let system: TestSystem;
let adminToken: string;

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
});
afterAll(() => system?.stop());

const SIGN_UP = 'mutation($input: SignUpInput!) { signUp(input: $input) { token user { id } } }';
const CREATE = 'mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }';

describe('sign-up input', () => {
  it.each([
    ['a malformed email', { email: 'not-an-email', name: 'A', password: 'long enough pw' }, /email/],
    ['an empty name', { email: 'ok@example.com', name: '   ', password: 'long enough pw' }, /name/],
    ['a short password', { email: 'ok2@example.com', name: 'A', password: 'short' }, /password/],
  ])('%s is BAD_USER_INPUT naming the field', async (_, input, field) => {
    const response = await system.graphql(SIGN_UP, { input });
    expectCode(response, 'BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(field);
    expect(response.data).toBeNull();
  });

  it('every problem is reported at once', async () => {
    const response = await system.graphql(SIGN_UP, { input: { email: 'x', name: '', password: 'y' } });
    const problems = response.errors?.[0]?.extensions?.['problems'] as { field: string }[];
    expect(problems.map((p) => p.field).sort()).toEqual(['email', 'name', 'password']);
  });

  it('a duplicate email (in any case) is BAD_USER_INPUT and the first account is untouched', async () => {
    const first = await signUp(system, 'Dup');
    const response = await system.graphql(SIGN_UP, {
      input: { email: first.email.toUpperCase(), name: 'Other', password: 'another password' },
    });
    expectCode(response, 'BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(/already exists/);
    await expect(logIn(system, first.email, 'correct horse battery')).resolves.toBeTruthy();
  });

  it('two simultaneous sign-ups with one email create one account', async () => {
    const input = { email: `race-${Date.now()}@example.com`, name: 'Race', password: 'long enough pw' };
    const results = await Promise.all([
      system.graphql(SIGN_UP, { input }),
      system.graphql(SIGN_UP, { input }),
    ]);
    expect(results.filter((r) => !r.errors)).toHaveLength(1);
    expectCode(
      results.find((r) => r.errors)!,
      'BAD_USER_INPUT',
    );
  });

  it('a missing required field is rejected by the schema with BAD_USER_INPUT', async () => {
    const response = await system.graphql(SIGN_UP, { input: { email: 'a@example.com', name: 'A' } });
    expectCode(response, 'BAD_USER_INPUT');
  });
});

describe('product input', () => {
  const valid = { sku: 'VAL-OK', name: 'Valid', priceCents: 100, stock: 1 };

  it.each([
    ['a negative price', { ...valid, sku: 'VAL-1', priceCents: -1 }, /priceCents/],
    ['a negative stock', { ...valid, sku: 'VAL-2', stock: -5 }, /stock/],
    ['an empty name', { ...valid, sku: 'VAL-3', name: '' }, /name/],
    ['a SKU with spaces', { ...valid, sku: 'has spaces' }, /sku/],
  ])('%s is BAD_USER_INPUT and creates nothing', async (_, input, field) => {
    const response = await system.graphql(CREATE, { input }, adminToken);
    expectCode(response, 'BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(field);
    const search = await system.graphql<{ products: { edges: unknown[] } }>(
      'query($s: String) { products(search: $s) { edges { cursor } } }',
      { s: input.sku },
    );
    expect(search.data?.products.edges).toEqual([]);
  });

  it('a float price is rejected (money is integer cents)', async () => {
    const response = await system.graphql(
      CREATE,
      { input: { ...valid, sku: 'VAL-F', priceCents: 9.99 } },
      adminToken,
    );
    expectCode(response, 'BAD_USER_INPUT');
  });

  it('a duplicate SKU is BAD_USER_INPUT', async () => {
    await createProduct(system, adminToken, { sku: 'VAL-DUP' });
    const response = await system.graphql(CREATE, { input: { ...valid, sku: 'val-dup' } }, adminToken);
    expectCode(response, 'BAD_USER_INPUT');
    expect(response.errors?.[0]?.message).toMatch(/already exists/);
  });

  it('restocking by zero, or an unknown product, is BAD_USER_INPUT and changes nothing', async () => {
    const product = await createProduct(system, adminToken, { stock: 4 });
    const zero = await system.graphql(
      'mutation($id: ID!) { restockProduct(id: $id, quantity: 0) { stock } }',
      { id: product.id },
      adminToken,
    );
    expectCode(zero, 'BAD_USER_INPUT');
    const unknown = await system.graphql(
      'mutation { restockProduct(id: "00000000-0000-4000-8000-00000000dead", quantity: 1) { stock } }',
      {},
      adminToken,
    );
    expectCode(unknown, 'BAD_USER_INPUT');
    expect(unknown.errors?.[0]?.message).toMatch(/unknown product/);
    const read = await system.graphql<{ product: { stock: number } }>(
      'query($id: ID!) { product(id: $id) { stock } }',
      {
        id: product.id,
      },
    );
    expect(read.data?.product.stock).toBe(4);
  });

  it('a restock that would overflow the stock is BAD_USER_INPUT', async () => {
    const product = await createProduct(system, adminToken, { stock: 2_000_000_000 });
    const response = await system.graphql(
      'mutation($id: ID!) { restockProduct(id: $id, quantity: 2000000000) { stock } }',
      { id: product.id },
      adminToken,
    );
    expectCode(response, 'BAD_USER_INPUT');
  });
});

describe('pagination arguments', () => {
  it('a cursor that is not one of this list is BAD_USER_INPUT', async () => {
    for (const after of ['garbage', Buffer.from('order:1').toString('base64url')]) {
      const response = await system.graphql(
        'query($after: String) { products(after: $after) { edges { cursor } } }',
        {
          after,
        },
      );
      expectCode(response, 'BAD_USER_INPUT');
    }
  });

  it('a negative `first` is BAD_USER_INPUT; above 100 it is capped at 100', async () => {
    const negative = await system.graphql('{ products(first: -1) { edges { cursor } } }');
    expectCode(negative, 'BAD_USER_INPUT');
    for (let i = 0; i < 101; i += 1) await createProduct(system, adminToken);
    const capped = await system.graphql<{
      products: { edges: unknown[]; pageInfo: { hasNextPage: boolean } };
    }>('{ products(first: 1000) { edges { cursor } pageInfo { hasNextPage } } }');
    expect(capped.data?.products.edges).toHaveLength(100);
    expect(capped.data?.products.pageInfo.hasNextPage).toBe(true);
  });
});
