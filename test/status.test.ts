import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SUBGRAPH_NAMES } from '../lib/config.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { collectLogLines } from './support/collectLogLines.ts';

let system: TestSystem;
const logs: { msg?: string; stopped?: string }[] = [];
beforeAll(async () => {
  system = await startTestSystem(
    { LOG_LEVEL: 'info' },
    {
      logDestination: collectLogLines(logs),
    },
  );
});
afterAll(() => system?.stop());

const get = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};
const gateway = (path: string) => get(`${new URL(system.gatewayUrl).origin}${path}`);
const subgraph = (name: (typeof SUBGRAPH_NAMES)[number], path: string) =>
  get(`${new URL(system.subgraphs[name].url).origin}${path}`);

/** Listed in the supergraph's order: sorted here so the tests need not know it. */
const byName = (list: unknown) =>
  [...(list as { name: string }[])].sort((a, b) => a.name.localeCompare(b.name));

// expect's asymmetric matchers are typed `any`: name them once as `unknown`.
const aNumber: unknown = expect.any(Number);
const containing = (shape: object): unknown => expect.objectContaining(shape);

const liveness = {
  status: 'ok',
  uptimeSeconds: aNumber,
  pid: process.pid,
  eventLoopLagMs: { mean: aNumber, p99: aNumber, max: aNumber },
  memory: {
    rssBytes: aNumber,
    heapUsedBytes: aNumber,
    heapTotalBytes: aNumber,
    externalBytes: aNumber,
  },
};

describe('health and status endpoints', () => {
  it('every service reports liveness: process, event-loop lag, memory and uptime', async () => {
    expect(await gateway('/health')).toEqual({ status: 200, body: { ...liveness, service: 'gateway' } });
    for (const name of SUBGRAPH_NAMES) {
      expect(await subgraph(name, '/health')).toEqual({ status: 200, body: { ...liveness, service: name } });
    }
  });

  it("each subgraph's /ready checks its database and the brokers it uses", async () => {
    const ok = { ok: true, latencyMs: aNumber };
    expect((await subgraph('products', '/ready')).body).toEqual({
      status: 'ready',
      service: 'products',
      checks: { database: ok },
    });
    expect((await subgraph('users', '/ready')).body.checks).toEqual({ database: ok, eventStream: ok });
    expect((await subgraph('notifications', '/ready')).body.checks).toEqual({
      database: ok,
      eventStream: ok,
      workQueue: ok,
    });
  });

  it('/services/status shows each subgraph with its URL, readiness, latency and breaker', async () => {
    const { status, body } = await gateway('/services/status');
    expect(status).toBe(200);
    expect(body['status']).toBe('ok');
    expect(byName(body['subgraphs'])).toEqual(
      [...SUBGRAPH_NAMES].sort().map((name) =>
        containing({
          name,
          url: system.subgraphs[name].url,
          ready: true,
          latencyMs: aNumber,
          breaker: 'closed',
          checks: containing({ database: containing({ ok: true }) }),
        }),
      ),
    );
  });

  it('/circuit-breakers lists one closed breaker per subgraph with its settings', async () => {
    const { body } = await gateway('/circuit-breakers');
    expect(byName(body['breakers'])).toEqual(
      [...SUBGRAPH_NAMES].sort().map((name) => ({
        name,
        state: 'closed',
        consecutiveFailures: 0,
        threshold: system.config.SUBGRAPH_BREAKER_THRESHOLD,
        halfOpenAfterMs: system.config.SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS,
        openedAt: null,
        lastFailure: null,
      })),
    );
  });

  it('a stopped subgraph makes the gateway unready, and its status says which', async () => {
    await system.subgraphs.payments.service.stop();
    const { status, body } = await gateway('/ready');
    expect(status).toBe(503);
    expect(body['subgraphs']).toContainEqual(containing({ name: 'payments', ready: false }));
    const report = await gateway('/services/status');
    expect(report.body['status']).toBe('degraded');
    await system.restart('payments');
    expect((await gateway('/ready')).status).toBe(200);
  });

  it('stops the gateway first, then each subgraph before those it calls, restarted ones included', async () => {
    // Restarted after the gateway started (payments above too): they must still stop after orders.
    await system.restart('products');
    await system.stop();
    const stopped = logs.filter((l) => l.msg === 'service stopped').map((l) => l.stopped);
    expect([...stopped].sort()).toEqual(['gateway', ...SUBGRAPH_NAMES].sort());
    expect(stopped[0]).toBe('gateway');
    for (const callee of ['users', 'products', 'payments']) {
      expect(stopped.indexOf('orders'), callee).toBeLessThan(stopped.indexOf(callee));
    }
  });
});
