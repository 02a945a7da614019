import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { SUBGRAPH_NAMES } from '../lib/config.ts';

/**
 * The real entry points as a user runs them. They use in-memory PGlite: what is under test here
 * is the process lifecycle (start, serve, SIGINT/SIGTERM, exit code), not the database.
 */
const children: ChildProcess[] = [];
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL');
});

function start(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, DATABASE_URL: '', DATA_DIR: ':memory:', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  const lines: string[] = [];
  const waiters: { pattern: RegExp; resolve: (match: RegExpMatchArray) => void }[] = [];
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (line) => {
      lines.push(line);
      for (const waiter of [...waiters]) {
        const match = line.match(waiter.pattern);
        if (match) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(match);
        }
      }
    });
  }
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    lines,
    waitFor(pattern: RegExp, timeoutMs = 45_000) {
      const seen = lines.map((line) => line.match(pattern)).find(Boolean);
      if (seen) return Promise.resolve(seen);
      return new Promise<RegExpMatchArray>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`timed out waiting for ${pattern}:\n${lines.join('\n')}`)),
          timeoutMs,
        );
        waiters.push({ pattern, resolve: (m) => (clearTimeout(timer), resolve(m)) });
        void exited.then((code) =>
          reject(new Error(`exited ${code} before ${pattern}:\n${lines.join('\n')}`)),
        );
      });
    },
  };
}

/**
 * Every port `npm start` opens, on 0: a fixed port may be taken on the machine running the tests
 * (by a developer's own `npm start`, or another suite). Derived from the config's own list of
 * subgraphs, so a new subgraph cannot be forgotten here.
 */
const EPHEMERAL_PORTS: Record<string, string> = {
  PORT: '0',
  ...Object.fromEntries(SUBGRAPH_NAMES.map((name) => [`${name.toUpperCase()}_PORT`, '0'])),
};

// Each test starts real processes (tsx compiles on start): slow on a busy machine, and the
// waits for their log lines allow 45 s.
describe('running it', { timeout: 120_000 }, () => {
  it('`npm start` serves the whole graph from one process and stops cleanly on Ctrl-C', async () => {
    const system = start('scripts/startAll.ts', {
      ...EPHEMERAL_PORTS,
      // Real brokers (under CI) are shared: keep this process's topics and queues to itself.
      MESSAGING_NAMESPACE: `proc${Date.now().toString(36)}_`,
    });
    const [, url] = (await system.waitFor(/GraphQL gateway\s+(\S+)/)) as unknown as [string, string];
    await system.waitFor(/Demo admin\s+admin@example\.com \/ admin/);
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ products(first: 2) { edges { node { name } } } }' }),
    });
    const body = (await response.json()) as { data: { products: { edges: unknown[] } } };
    expect(body.data.products.edges).toHaveLength(2);
    system.child.kill('SIGINT');
    expect(await system.exited).toBe(0);
    expect(system.lines.join('\n')).toMatch(/stopped cleanly/);
    // The gateway first (no new requests), then each service before the ones it calls: orders'
    // saga runner still reaches users, products and payments while it stops.
    const stopped = system.lines
      .filter((line) => line.includes('"msg":"service stopped"'))
      .map((line) => (JSON.parse(line) as { stopped: string }).stopped);
    expect([...stopped].sort()).toEqual(['gateway', ...SUBGRAPH_NAMES].sort());
    expect(stopped[0]).toBe('gateway');
    for (const callee of ['users', 'products', 'payments']) {
      expect(stopped.indexOf('orders'), callee).toBeLessThan(stopped.indexOf(callee));
    }
  });

  it('SIGTERM during a running placeOrder lets the request complete, then exits 0', async () => {
    const system = start('scripts/startAll.ts', {
      ...EPHEMERAL_PORTS,
      MESSAGING_NAMESPACE: `term${Date.now().toString(36)}_`,
      LOG_LEVEL: 'debug',
      ORDER_SAGA_WAIT_MS: '3000',
    });
    const [, url] = (await system.waitFor(/GraphQL gateway\s+(\S+)/)) as unknown as [string, string];
    const call = async <T>(query: string, variables: Record<string, unknown>, token?: string) => {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(token && { authorization: `Bearer ${token}` }) },
        body: JSON.stringify({ query, variables }),
      });
      return { status: response.status, body: (await response.json()) as { data?: T } };
    };
    const login = await call<{ logIn: { token: string } }>(
      'mutation($e: String!, $p: String!) { logIn(email: $e, password: $p) { token } }',
      {
        e: 'admin@example.com',
        p: 'admin',
      },
    );
    const token = login.body.data!.logIn.token;
    const products = await call<{ products: { edges: { node: { id: string } }[] } }>(
      '{ products(first: 1) { edges { node { id } } } }',
      {},
    );
    const productId = products.body.data!.products.edges[0]!.node.id;
    // tok_timeout keeps the saga charging for several seconds: the request is surely in flight.
    const placing = call<{ placeOrder: { id: string; status: string } }>(
      'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }',
      { input: { items: [{ productId, quantity: 1 }], paymentToken: 'tok_timeout' } },
      token,
    );
    // Stock reserved (the products subgraph logged the saga's mutation): now it is charging.
    await system.waitFor(/"service":"products".*"type":"mutation".*graphql operation/);
    system.child.kill('SIGTERM');
    const placed = await placing;
    expect(placed.status).toBe(200);
    expect(['PENDING', 'CANCELLED']).toContain(placed.body.data?.placeOrder.status);
    expect(await system.exited).toBe(0);
    expect(system.lines.join('\n')).toMatch(/stopped cleanly/);
  });

  it('a subgraph runs alone (`npm run start:users`) and exits 0 on SIGTERM', async () => {
    const users = start('subgraphs/users/src/main.ts', { USERS_PORT: '0' });
    const [, url] = (await users.waitFor(/"url":"([^"]+)".*users subgraph ready/)) as unknown as [
      string,
      string,
    ];
    const health = await fetch(new URL('/health', url));
    expect(health.status).toBe(200);
    users.child.kill('SIGTERM');
    expect(await users.exited).toBe(0);
  });

  it('a bad configuration fails fast, naming the variable', async () => {
    const gateway = start('gateway/src/main.ts', { PORT: 'not-a-port' });
    expect(await gateway.exited).toBe(1);
    expect(gateway.lines.join('\n')).toMatch(/PORT/);
  });
});
