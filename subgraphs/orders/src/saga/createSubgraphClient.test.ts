import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createServiceCredentials, SERVICE_CREDENTIAL_HEADER } from '../../../../lib/auth/tokens.ts';
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

  it('posts JSON signed with its credential, reading each reply whole over kept-alive connections', async () => {
    const seen: { headers: Record<string, string | string[] | undefined>; body: string }[] = [];
    let connections = 0;
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        seen.push({ headers: req.headers, body });
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ data: { n: seen.length } }));
      });
    });
    server.on('connection', () => (connections += 1));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    const client = createSubgraphClient({ name: 'fake', url, credentials });
    for (let i = 1; i <= 10; i++) {
      await expect(client.request('query($i: Int) { n }', { i })).resolves.toEqual({ n: i });
    }
    // Kept alive and reused (a second one may open while the first is being freed).
    expect(connections).toBeLessThanOrEqual(2);
    expect(seen.map((call) => JSON.parse(call.body) as unknown)).toEqual(
      [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => ({ query: 'query($i: Int) { n }', variables: { i } })),
    );
    for (const { headers } of seen) {
      expect(headers['content-type']).toBe('application/json');
      expect(await credentials.verify(String(headers[SERVICE_CREDENTIAL_HEADER]))).toMatchObject({
        service: 'orders',
      });
    }
    await client.close();
  });

  it('a sibling that cannot be reached is a transient SERVICE_UNAVAILABLE naming it', async () => {
    const fake = await fakeSubgraph([[200, { data: { ok: true } }]]);
    await new Promise<void>((resolve) => server!.close(() => resolve()));
    server = undefined;
    const client = createSubgraphClient({
      name: 'fake',
      url: fake.url,
      credentials,
      maxAttempts: 2,
      initialBackoffMs: 1,
    });
    await expect(client.request('{ ok }')).rejects.toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      transient: true,
      message: expect.stringMatching(/^fake: unreachable \(/) as unknown,
    });
  });

  it('a reply that is not GraphQL is an error by its HTTP status: 5xx and 429 transient, others not', async () => {
    server = createServer((_req, res) => res.writeHead(400, { 'content-type': 'text/plain' }).end('nope'));
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    const client = createSubgraphClient({ name: 'fake', url, credentials, initialBackoffMs: 1 });
    await expect(client.request('{ ok }')).rejects.toMatchObject({
      message: 'fake: HTTP 400 without a GraphQL body',
      code: 'SERVICE_UNAVAILABLE',
      transient: false,
    });
  });

  it('stops at once, without retrying, when its service stops', async () => {
    server = createServer(() => {}); // never answers
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/graphql`;
    const stop = new AbortController();
    const client = createSubgraphClient({
      name: 'fake',
      url,
      credentials,
      signal: stop.signal,
      initialBackoffMs: 1,
    });
    const call = client.request('{ ok }');
    setTimeout(() => stop.abort(), 20);
    await expect(call).rejects.toMatchObject({ message: 'fake: aborted', transient: false });
    server.closeAllConnections();
  });
});
