import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createServiceCredentials } from '../../../../lib/auth/tokens.ts';
import { createSubgraphClient, SubgraphCallError } from './createSubgraphClient.ts';

const credentials = createServiceCredentials({ secret: 'x'.repeat(32), ttlSeconds: 60, service: 'orders' });
let server: Server | undefined;
afterEach(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

/** A fake subgraph answering each call with the next reply (status, body). */
async function fakeSubgraph(replies: [number, unknown][]) {
  let calls = 0;
  server = createServer((_req, res) => {
    const [status, body] = replies[Math.min(calls, replies.length - 1)]!;
    calls += 1;
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
  return { url, calls: () => calls };
}

const unavailable: [number, unknown] = [
  200,
  { errors: [{ message: 'down', extensions: { code: 'SERVICE_UNAVAILABLE' } }] },
];

describe('createSubgraphClient', () => {
  it('retries transient failures (5xx, SERVICE_UNAVAILABLE) and returns the data', async () => {
    const fake = await fakeSubgraph([[503, {}], unavailable, [200, { data: { ok: true } }]]);
    const client = createSubgraphClient({ name: 'fake', url: fake.url, credentials, initialBackoffMs: 1 });
    await expect(client.request('{ ok }')).resolves.toEqual({ ok: true });
    expect(fake.calls()).toBe(3);
  });

  it.each(['BAD_USER_INPUT', 'FORBIDDEN', 'IDEMPOTENCY_CONFLICT', 'RESERVATION_NOT_HELD'])(
    'never retries %s',
    async (code) => {
      const fake = await fakeSubgraph([[200, { errors: [{ message: 'no', extensions: { code } }] }]]);
      const client = createSubgraphClient({ name: 'fake', url: fake.url, credentials, initialBackoffMs: 1 });
      await expect(client.request('{ ok }')).rejects.toMatchObject({ code, transient: false });
      expect(fake.calls()).toBe(1);
    },
  );

  it('opens its circuit after repeated transient failures and fails fast', async () => {
    const fake = await fakeSubgraph([unavailable]);
    const client = createSubgraphClient({
      name: 'fake',
      url: fake.url,
      credentials,
      maxAttempts: 1,
      breakerThreshold: 2,
      halfOpenAfterMs: 60_000,
    });
    for (let i = 0; i < 2; i++)
      await expect(client.request('{ ok }')).rejects.toBeInstanceOf(SubgraphCallError);
    await expect(client.request('{ ok }')).rejects.toThrow(/circuit open/);
    expect(fake.calls()).toBe(2);
  });

  it('times out a call that gets no reply', async () => {
    server = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    const client = createSubgraphClient({
      name: 'fake',
      url,
      credentials,
      timeoutMs: 50,
      maxAttempts: 2,
      initialBackoffMs: 1,
    });
    await expect(client.request('{ ok }')).rejects.toThrow(/no reply within 50 ms/);
    server.closeAllConnections();
  });
});
