import { createServer, connect, type Server } from 'node:net';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { composeServices } from '@apollo/composition';
import { parse } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createGateway } from '../gateway/src/server.ts';
import { SUBGRAPH_NAMES } from '../lib/config.ts';
import { createLogger } from '../lib/logger.ts';
import { ADMIN, logIn } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { eventually } from './support/eventually.ts';

let system: TestSystem;
let supergraphPath: string;
const original = await readFile('supergraph.graphql', 'utf8');

beforeAll(async () => {
  supergraphPath = join(await mkdtemp(join(tmpdir(), 'supergraph-')), 'supergraph.graphql');
  await writeFile(supergraphPath, original);
  system = await startTestSystem({ SUPERGRAPH_PATH: supergraphPath });
});
afterAll(() => system?.stop());

const root = () => system.gatewayUrl.replace(/\/graphql$/, '');

describe('gateway endpoints', () => {
  it('GET /health answers while the process lives', async () => {
    const response = await fetch(`${root()}/health`);
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ status: 'ok', service: 'gateway' });
  });

  it('GET /ready is 200 when every subgraph answers, listing each', async () => {
    const response = await fetch(`${root()}/ready`);
    const body = (await response.json()) as { subgraphs: { name: string; ready: boolean }[] };
    expect(response.status).toBe(200);
    expect(body.subgraphs.map((s) => [s.name, s.ready]).sort()).toEqual(
      [...SUBGRAPH_NAMES].sort().map((name) => [name, true]),
    );
  });

  it('serves Apollo Sandbox to browsers at / and at /graphql', async () => {
    for (const path of ['/', '/graphql']) {
      const response = await fetch(`${root()}${path}`, { headers: { accept: 'text/html' } });
      expect(response.status).toBe(200);
      expect(await response.text()).toMatch(/sandbox/i);
    }
  });

  it('reuses keep-alive connections to subgraphs instead of opening one per request', async () => {
    // A TCP relay in front of the users subgraph counts the connections the gateway opens.
    let connections = 0;
    const usersPort = Number(new URL(system.subgraphs.users.url).port);
    const relay: Server = createServer((socket) => {
      connections += 1;
      const upstream = connect(usersPort, '127.0.0.1');
      socket.pipe(upstream).pipe(socket);
      socket.on('error', () => upstream.destroy());
      upstream.on('error', () => socket.destroy());
    });
    await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve));
    const relayPort = (relay.address() as { port: number }).port;
    const gateway = createGateway({
      config: system.config,
      logger: createLogger({ level: 'silent', service: 'gateway' }),
      secrets: system.secrets,
      subgraphUrls: {
        ...Object.fromEntries(Object.entries(system.subgraphs).map(([name, s]) => [name, s.url])),
        users: `http://127.0.0.1:${relayPort}/graphql`,
      },
    });
    try {
      const { url } = await gateway.start({ port: 0, host: '127.0.0.1' });
      const token = await logIn(system, ADMIN.email, ADMIN.password);
      for (let i = 0; i < 20; i += 1) {
        const response = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({ query: '{ me { email } }' }),
        });
        expect(((await response.json()) as { data: { me: { email: string } } }).data.me.email).toBe(
          ADMIN.email,
        );
      }
      expect(connections).toBe(1);
    } finally {
      await gateway.stop();
      relay.close();
    }
  });
});

describe('supergraph hot reload', () => {
  const hasPaymentType = async () => {
    const response = await system.graphql<{ __type: { name: string } | null }>(
      '{ __type(name: "Payment") { name } }',
    );
    return response.data?.__type?.name === 'Payment';
  };

  it('applies a new supergraph file without a restart, and ignores a broken one', async () => {
    expect(await hasPaymentType()).toBe(true);
    // Compose a supergraph without the payments subgraph and drop it in place.
    const services = await Promise.all(
      ['users', 'products', 'orders'].map(async (name) => ({
        name,
        url: `http://127.0.0.1:1/${name}`,
        typeDefs: parse(await readFile(`subgraphs/${name}/src/schema.graphql`, 'utf8')),
      })),
    );
    const smaller = composeServices(services);
    expect(smaller.errors).toBeUndefined();
    await writeFile(supergraphPath, smaller.supergraphSdl!);
    expect(await eventually(hasPaymentType, (has) => !has, { timeoutMs: 10_000 })).toBe(false);

    // A file that does not parse is rejected and the current supergraph keeps serving.
    await writeFile(supergraphPath, 'this is not a supergraph {');
    await new Promise((resolve) => setTimeout(resolve, 500));
    const products = await system.graphql('{ products(first: 1) { edges { cursor } } }');
    expect(products.errors).toBeUndefined();

    await writeFile(supergraphPath, original);
    expect(await eventually(hasPaymentType, (has) => has, { timeoutMs: 10_000 })).toBe(true);
    // Routing URLs in the file are still overridden: queries reach the running subgraphs.
    const me = await system.graphql('{ products(first: 1) { edges { node { name } } } }');
    expect(me.errors).toBeUndefined();
  });
});

describe('when a subgraph is down', () => {
  it('GET /ready is 503 and names the subgraph that does not answer', async () => {
    await system.subgraphs.payments.service.stop();
    const response = await fetch(`${root()}/ready`);
    const body = (await response.json()) as { status: string; subgraphs: { name: string; ready: boolean }[] };
    expect(response.status).toBe(503);
    expect(body.status).toBe('unavailable');
    expect(body.subgraphs.filter((s) => !s.ready).map((s) => s.name)).toEqual(['payments']);
    // Liveness is about the gateway process itself, not its subgraphs.
    expect((await fetch(`${root()}/health`)).status).toBe(200);
  });

  it('queries that do not need it still answer; its fields are null with SERVICE_UNAVAILABLE naming it', async () => {
    const token = await logIn(system, ADMIN.email, ADMIN.password);
    const response = await system.graphql<{
      me: { email: string; orders: { edges: { node: { id: string; payment: unknown } }[] } };
    }>('{ me { email orders(first: 1) { edges { node { id payment { id } } } } } }', {}, token);
    expect(response.data?.me.email).toBe(ADMIN.email);
    expect(response.data?.me.orders.edges[0]?.node.payment).toBeNull();
    const error = response.errors?.find((e) => e.extensions?.['code'] === 'SERVICE_UNAVAILABLE');
    expect(error?.message).toMatch(/payments/);
  });
});
