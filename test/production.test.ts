import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectCode, logIn } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

const secret = 'p'.repeat(48);
let system: TestSystem;

beforeAll(async () => {
  system = await startTestSystem({
    NODE_ENV: 'production',
    JWT_SECRET: secret,
    SERVICE_SECRET: `${secret}q`,
    ADMIN_EMAIL: 'root@example.com',
    ADMIN_PASSWORD: 'a strong production password',
  });
});
afterAll(() => system?.stop());

describe('in production', () => {
  it('seeds no demo data, only the admin account from ADMIN_EMAIL / ADMIN_PASSWORD', async () => {
    const products = await system.graphql<{ products: { edges: unknown[] } }>(
      '{ products { edges { cursor } } }',
    );
    expect(products.data?.products.edges).toEqual([]);
    const token = await logIn(system, 'root@example.com', 'a strong production password');
    const me = await system.graphql<{ me: { role: string; orders: { edges: unknown[] } } }>(
      '{ me { role orders { edges { cursor } } } }',
      {},
      token,
    );
    expect(me.data?.me).toEqual({ role: 'ADMIN', orders: { edges: [] } });
    const demoAdmin = await system.graphql(
      'mutation { logIn(email: "admin@example.com", password: "admin") { token } }',
    );
    expectCode(demoAdmin, 'UNAUTHENTICATED');
  });

  it('errors carry their code but no stack trace', async () => {
    const response = await system.graphql('{ products(first: -1) { edges { cursor } } }');
    expectCode(response, 'BAD_USER_INPUT');
    expect(JSON.stringify(response.errors)).not.toMatch(/stacktrace|at .*\.ts/);
  });

  it('an unexpected failure (a table gone) shows neither SQL nor internals', async () => {
    await system.subgraphs.products.db.exec('ALTER TABLE products RENAME TO products_gone');
    const response = await system.graphql('{ products { edges { cursor } } }');
    expectCode(response, 'INTERNAL_SERVER_ERROR');
    // The path names the field (`products`); message and extensions must say nothing more.
    const text = JSON.stringify(response.errors?.map((e) => [e.message, e.extensions]));
    expect(text).not.toMatch(/stacktrace|SELECT|products_gone|FROM products|relation|PGlite/i);
    expect(response.errors?.[0]?.message).toBe('Internal server error');
  });

  it('validation errors suggest no field names ("Did you mean")', async () => {
    const response = await system.graphql('{ products { edges { node { nme } } } }');
    expectCode(response, 'GRAPHQL_VALIDATION_FAILED');
    expect(JSON.stringify(response.errors)).not.toMatch(/Did you mean|"name"/);
  });

  it('operation limits hold, with no stack trace either', async () => {
    const response = await system.graphql(`{ ${Array.from({ length: 21 }, () => 'me { id }').join(' ')} }`);
    expectCode(response, 'OPERATION_LIMIT');
    expect(JSON.stringify(response.errors)).not.toMatch(/stacktrace/);
  });

  it('an unreadable body (malformed JSON, another charset) is a JSON BAD_REQUEST error, no stack', async () => {
    const cases = [
      { body: '{"query": ', contentType: 'application/json', status: 400 },
      { body: '{"query":"{ me { id } }"}', contentType: 'application/json; charset=iso-8859-1', status: 415 },
    ];
    for (const { body, contentType, status } of cases) {
      const response = await fetch(system.gatewayUrl, {
        method: 'POST',
        headers: { 'content-type': contentType },
        body,
      });
      expect(response.status).toBe(status);
      const text = await response.text();
      expect(JSON.parse(text)).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
      expect(text).not.toMatch(/<html|stacktrace|at .*\.(js|ts):\d+|node_modules/i);
    }
  });

  it('introspection is off', async () => {
    const response = await system.graphql('{ __schema { types { name } } }');
    expect(response.errors?.length).toBeGreaterThan(0);
    expect(response.data ?? null).toBeNull();
  });
});
