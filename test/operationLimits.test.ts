import { getIntrospectionQuery } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, logIn } from './support/fixtures.ts';
import { startObservedGateway, type ObservedGateway } from './support/startObservedGateway.ts';
import { postGraphQL, startTestSystem, type TestSystem } from './support/startTestSystem.ts';

let system: TestSystem;
let observed: ObservedGateway;
let adminToken: string;

beforeAll(async () => {
  system = await startTestSystem();
  // The default limits: whatever this suite sends is judged as production would judge it.
  observed = await startObservedGateway(system);
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
});
afterAll(async () => {
  await observed?.stop();
  await system?.stop();
});

const send = (body: unknown, token = adminToken) =>
  postGraphQL<Record<string, unknown>>(observed.url, body, { authorization: `Bearer ${token}` });

/** Sends `body` and expects it refused with OPERATION_LIMIT before any subgraph heard of it. */
async function expectRejectedUnseen(body: unknown, limit: string, status = 400) {
  const before = observed.totalCalls();
  const response = await send(body);
  expect(response.status).toBe(status);
  expect(response.data ?? null).toBeNull();
  expect(response.errors?.map((e) => e.extensions?.['code'])).toEqual(['OPERATION_LIMIT']);
  expect(response.errors?.[0]?.extensions?.['limit']).toBe(limit);
  expect(observed.totalCalls()).toBe(before);
  return response;
}

const repeat = (n: number, item: (i: number) => string) =>
  Array.from({ length: n }, (_, i) => item(i)).join(' ');

describe('operation limits at the gateway', () => {
  it('an operation deeper than 20 levels is refused, and no subgraph is called', async () => {
    // me > orders > edges > node > user > orders > ... : four levels per round trip through User.
    let selection = 'id';
    for (let i = 0; i < 6; i++) selection = `orders { edges { node { user { ${selection} } } } }`;
    const response = await expectRejectedUnseen({ query: `{ me { ${selection} } }` }, 'depth');
    expect(response.errors?.[0]?.message).toMatch(/26 levels deep; at most 20/);
  });

  it('more than 30 aliases are refused, counted through fragments as they would execute', async () => {
    await expectRejectedUnseen(
      { query: `{ products { edges { ${repeat(31, (i) => `a${i}: cursor`)} } } }` },
      'aliases',
    );
    // 4 aliases in a fragment spread 8 times: 32 aliases though the text holds only 4.
    await expectRejectedUnseen(
      {
        query: `{ products { edges { node { ...Names ${repeat(7, (i) => `... on Product { ...Names n${i}: id }`)} } } } }
          fragment Names on Product { a: name b: name c: name d: name }`,
      },
      'aliases',
    );
  });

  it('more than 20 root fields are refused', async () => {
    await expectRejectedUnseen({ query: `{ ${repeat(21, () => 'me { id }')} }` }, 'rootFields');
  });

  it('an operation of more than 15,000 tokens is refused', async () => {
    await expectRejectedUnseen(
      { query: `{ products { edges { ${repeat(16_000, () => 'cursor')} } } }` },
      'tokens',
    );
  });

  it('a body over 2 MB is answered 413 with a GraphQL error', async () => {
    const padding = 'x'.repeat(2 * 1024 * 1024);
    await expectRejectedUnseen({ query: '{ me { id } }', variables: { padding } }, 'bodyBytes', 413);
  });

  it('batches are capped at 10 operations; within the cap each operation answers', async () => {
    await expectRejectedUnseen(
      Array.from({ length: 11 }, () => ({ query: '{ me { id } }' })),
      'batch',
    );
    const response = await fetch(observed.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
      body: JSON.stringify([
        { query: '{ me { email } }' },
        { query: '{ products(first: 1) { edges { cursor } } }' },
      ]),
    });
    const results = (await response.json()) as { data?: Record<string, unknown> }[];
    expect(results).toHaveLength(2);
    expect(results[0]?.data).toEqual({ me: { email: ADMIN.email } });
    expect(results[1]?.data?.['products']).toBeDefined();
  });

  it("accepts the README's federated query and Sandbox's introspection query", async () => {
    const myOrders = `query MyOrders { me { id email name role orders(first: 5) { edges { cursor node {
      id status totalCents createdAt items { quantity unitPriceCents product { id sku name priceCents available } }
      payment { id status amountCents attempts refundedCents } } } pageInfo { hasNextPage endCursor } } } }`;
    const orders = await send({ query: myOrders });
    expect(orders.errors).toBeUndefined();
    expect(orders.data?.['me']).toMatchObject({ email: ADMIN.email });

    const introspection = await send({
      query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }),
    });
    expect(introspection.errors).toBeUndefined();
    expect(introspection.data?.['__schema']).toBeDefined();
  });
});

/** Posts raw bytes, as a broken or foreign client might. */
async function postRaw(url: string, body: string | Buffer, contentType: string) {
  const response = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, body });
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type'), text };
}

describe('request bodies the gateway cannot read', () => {
  it('malformed JSON is a GraphQL error with BAD_REQUEST, not an HTML page with a stack trace', async () => {
    const response = await postRaw(observed.url, '{"query": "{ me { id } }"', 'application/json');
    expect(response.status).toBe(400);
    expect(response.contentType).toMatch(/^application\/json/);
    const body = JSON.parse(response.text) as { errors: { message: string; extensions: { code: string } }[] };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(['BAD_REQUEST']);
    expect(body.errors[0]?.message).toMatch(/not valid JSON/);
    expect(response.text).not.toMatch(/<html|<pre|stacktrace|at .*\.(js|ts):\d+/i);
  });

  it('a charset other than UTF-8 is refused the same way (415), and reaches no subgraph', async () => {
    const before = observed.totalCalls();
    const response = await postRaw(
      observed.url,
      Buffer.from('{"query":"{ me { id } }"}', 'latin1'),
      'application/json; charset=latin1',
    );
    expect(response.status).toBe(415);
    const body = JSON.parse(response.text) as { errors: { extensions: { code: string } }[] };
    expect(body.errors.map((e) => e.extensions.code)).toEqual(['BAD_REQUEST']);
    expect(response.text).not.toMatch(/<html|stacktrace|at .*\.(js|ts):\d+/i);
    expect(observed.totalCalls()).toBe(before);
  });
});
