import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../lib/http/listen.ts';
import { ADMIN, codesOf, expectCode, logIn } from './support/fixtures.ts';
import { startObservedGateway, type ObservedGateway } from './support/startObservedGateway.ts';
import {
  postGraphQL,
  startTestSystem,
  type GraphQLResponse,
  type TestSystem,
} from './support/startTestSystem.ts';

/** Buckets that barely refill during a test: what a caller gets is its capacity. */
const SLOW = '0.001';
let system: TestSystem;

beforeAll(async () => {
  system = await startTestSystem({
    RATE_LIMIT_CAPACITY: '5',
    RATE_LIMIT_REFILL_PER_SECOND: SLOW,
    RATE_LIMIT_AUTH_CAPACITY: '3',
    RATE_LIMIT_AUTH_REFILL_PER_SECOND: SLOW,
    // The 100-alias brute force below must meet the rate limit, not the operation limits.
    OPERATION_MAX_ALIASES: '200',
    OPERATION_MAX_ROOT_FIELDS: '200',
  });
});
afterAll(() => system?.stop());

/** A fresh gateway over the same subgraphs: fresh in-memory buckets (Redis keys are per test). */
async function withGateway<T>(
  overrides: Record<string, unknown>,
  fn: (gateway: ObservedGateway) => Promise<T>,
): Promise<T> {
  const gateway = await startObservedGateway(system, {
    REDIS_KEY_PREFIX: `${system.config.REDIS_KEY_PREFIX}${randomUUID()}:`,
    ...overrides,
  });
  try {
    return await fn(gateway);
  } finally {
    await gateway.stop();
  }
}

const logInMutation = (n: number, password: (i: number) => string) =>
  `mutation { ${Array.from(
    { length: n },
    (_, i) => `a${i}: logIn(email: "${ADMIN.email}", password: "${password(i)}") { token }`,
  ).join(' ')} }`;

describe('rate limits', () => {
  it('an anonymous client gets its bucket, then RATE_LIMITED with a retry-after hint', async () => {
    await withGateway({}, async ({ url }) => {
      for (let i = 0; i < 5; i++) {
        expect(
          (await postGraphQL(url, { query: '{ products(first: 1) { edges { cursor } } }' })).errors,
        ).toBeUndefined();
      }
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ products(first: 1) { edges { cursor } } }' }),
      });
      expect(response.status).toBe(429);
      const retryAfter = Number(response.headers.get('retry-after'));
      expect(retryAfter).toBeGreaterThan(0);
      const body = (await response.json()) as { errors: { extensions: Record<string, unknown> }[] };
      expect(body.errors[0]?.extensions).toMatchObject({
        code: 'RATE_LIMITED',
        retryAfterSeconds: retryAfter,
      });
    });
  });

  it('a signed-in user has a bucket of their own, apart from the anonymous callers of the same IP', async () => {
    const token = await logIn(system, ADMIN.email, ADMIN.password);
    await withGateway({}, async ({ url }) => {
      for (let i = 0; i < 5; i++) await postGraphQL(url, { query: '{ me { id } }' });
      expectCode(await postGraphQL(url, { query: '{ me { id } }' }), 'RATE_LIMITED');
      const mine = await postGraphQL<{ me: { email: string } }>(
        url,
        { query: '{ me { email } }' },
        { authorization: `Bearer ${token}` },
      );
      expect(mine.data?.me.email).toBe(ADMIN.email);
    });
  });

  it('each operation of a batch counts', async () => {
    await withGateway({}, async (gateway) => {
      const { url } = gateway;
      // Distinct operations: identical ones in flight together would share one execution.
      const batch = Array.from({ length: 7 }, (_, i) => ({
        query: `{ products(first: ${i + 1}) { edges { cursor } } }`,
      }));
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(batch),
      });
      const results = (await response.json()) as { errors?: { extensions: { code: string } }[] }[];
      const limited = results.filter((r) => r.errors?.[0]?.extensions.code === 'RATE_LIMITED');
      expect(limited).toHaveLength(2);
      expect(gateway.totalCalls()).toBe(5);
    });
  });

  it('100 aliased logIn attempts in one request do not get 100 tries, nor a hint to try again', async () => {
    await withGateway({}, async ({ url, calls }) => {
      // The right password is the last of the 100 guesses: were they all tried, one would win.
      const guesses = logInMutation(100, (i) => (i === 99 ? ADMIN.password : `wrong-${i}`));
      const refused = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: guesses }),
      });
      const response = {
        status: refused.status,
        ...((await refused.json()) as Omit<GraphQLResponse<Record<string, unknown>>, 'status'>),
      };
      expect(codesOf(response)).toEqual(['RATE_LIMITED']);
      expect(response.data ?? null).toBeNull();
      expect(calls['users']).toBe(0);
      // 100 attempts never fit a bucket of 3: "try again in 1 s" would be a lie.
      expect(refused.headers.get('retry-after')).toBeNull();
      expect(response.errors?.[0]?.extensions).not.toHaveProperty('retryAfterSeconds');
      expect(response.errors?.[0]?.extensions).toMatchObject({ cost: 100, capacity: 3 });
      expect(response.errors?.[0]?.message).toMatch(/100 sign-in and sign-up attempts.*at most 3/);
      // Refused whole, it cost nothing: the bucket still holds its 3 attempts, then no more.
      for (let i = 0; i < 3; i++) {
        const wrong = await postGraphQL(url, { query: logInMutation(1, () => 'wrong') });
        expect(codesOf(wrong)).toEqual(['UNAUTHENTICATED']);
      }
      const fourth = await postGraphQL(url, { query: logInMutation(1, () => ADMIN.password) });
      expect(codesOf(fourth)).toEqual(['RATE_LIMITED']);
    });
  });

  it('an operation refused by the operation limits costs no rate-limit token, logIn ones included', async () => {
    await withGateway({ OPERATION_MAX_DEPTH: 3 }, async ({ url }) => {
      const tooDeep = `mutation { logIn(email: "${ADMIN.email}", password: "wrong") { user { orders { edges { cursor } } } } }`;
      // More than both buckets hold (5 operations, 3 sign-in attempts).
      for (let i = 0; i < 6; i++) {
        expect(codesOf(await postGraphQL(url, { query: tooDeep }))).toEqual(['OPERATION_LIMIT']);
      }
      for (let i = 0; i < 3; i++) {
        const attempt = await postGraphQL(url, { query: logInMutation(1, () => 'wrong') });
        expect(codesOf(attempt)).toEqual(['UNAUTHENTICATED']);
      }
      const query = { query: '{ products(first: 1) { edges { cursor } } }' };
      for (let i = 0; i < 2; i++) expect((await postGraphQL(url, query)).errors).toBeUndefined();
      expectCode(await postGraphQL(url, query), 'RATE_LIMITED');
    });
  });

  it('signUp shares the stricter bucket: sign-ups past it are refused', async () => {
    await withGateway({}, async ({ url }) => {
      const signUp = () =>
        postGraphQL(url, {
          query: `mutation { signUp(input: { email: "rl-${randomUUID()}@example.com", name: "R", password: "long enough pw" }) { token } }`,
        });
      for (let i = 0; i < 3; i++) expect((await signUp()).errors).toBeUndefined();
      expectCode(await signUp(), 'RATE_LIMITED');
    });
  });
});

describe('when Redis is unreachable', () => {
  it('the gateway starts anyway, limits in its own memory, and reports itself degraded but ready', async () => {
    const probe = createServer();
    const port = await listen(probe, 0, '127.0.0.1');
    await new Promise((resolve) => probe.close(resolve));
    await withGateway({ REDIS_URL: `redis://127.0.0.1:${port}` }, async ({ url }) => {
      const query = { query: '{ products(first: 1) { edges { cursor } } }' };
      for (let i = 0; i < 5; i++) expect((await postGraphQL(url, query)).errors).toBeUndefined();
      expectCode(await postGraphQL(url, query), 'RATE_LIMITED');

      const ready = await fetch(new URL('/ready', url));
      expect(ready.status).toBe(200);
      const body = (await ready.json()) as { status: string; checks: Record<string, { ok: boolean }> };
      expect(body.status).toBe('degraded');
      expect(body.checks['redis']).toMatchObject({ ok: false });
      const status = (await (await fetch(new URL('/services/status', url))).json()) as {
        status: string;
        checks: Record<string, { ok: boolean }>;
      };
      expect(status).toMatchObject({ status: 'degraded', checks: { redis: { ok: false } } });
    });
  });
});

/** Two gateway replicas on one Redis: the limit is the same one for both. */
const redisUrl = process.env['REDIS_URL'];
const redisRequired = process.env['CI'] === 'true';

describe.skipIf(!redisUrl && !redisRequired)('rate limits across gateway replicas (Redis)', () => {
  it('a client that spent its bucket on one replica is refused by the other', async () => {
    if (!redisUrl) throw new Error('CI=true requires REDIS_URL for the shared rate limits');
    const shared = {
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: `${system.config.REDIS_KEY_PREFIX}${randomUUID()}:`,
    };
    const one = await startObservedGateway(system, shared);
    const two = await startObservedGateway(system, shared);
    try {
      const query = { query: '{ products(first: 1) { edges { cursor } } }' };
      for (let i = 0; i < 3; i++) expect((await postGraphQL(one.url, query)).errors).toBeUndefined();
      for (let i = 0; i < 2; i++) expect((await postGraphQL(two.url, query)).errors).toBeUndefined();
      expectCode(await postGraphQL(one.url, query), 'RATE_LIMITED');
      expectCode(await postGraphQL(two.url, query), 'RATE_LIMITED');
      const ready = (await (await fetch(new URL('/ready', one.url))).json()) as Record<string, unknown>;
      expect(ready).toMatchObject({ status: 'ready', checks: { redis: { ok: true } } });
    } finally {
      await one.stop();
      await two.stop();
    }
  });
});
