import { ApolloServer } from '@apollo/server';
import { describe, expect, it } from 'vitest';
import { createMetrics, createRequestMetricsPlugin } from './createMetrics.ts';

/** The `operation` label values of graphql_requests_total, as a scrape shows them. */
async function operationLabels(metrics: ReturnType<typeof createMetrics>): Promise<string[]> {
  const text = await metrics.registry.metrics();
  const labels = [...text.matchAll(/^graphql_requests_total\{[^}]*operation="([^"]*)"/gm)].map((m) => m[1]!);
  return [...new Set(labels)].sort();
}

describe('metrics', () => {
  it('keeps each service’s series apart, labelled with the service', async () => {
    const orders = createMetrics({ service: 'orders' });
    const payments = createMetrics({ service: 'payments' });
    orders
      .counter({ name: 'saga_outcomes_total', help: 'sagas', labelNames: ['outcome'] })
      .inc({ outcome: 'x' });
    const ordersText = await orders.registry.metrics();
    expect(ordersText).toContain('saga_outcomes_total{outcome="x",service="orders"} 1');
    expect(ordersText).toContain('process_resident_memory_bytes');
    expect(await payments.registry.metrics()).not.toContain('saga_outcomes_total');
  });

  it('hands the same family to every module of a service that asks for it', () => {
    const metrics = createMetrics({ service: 'gateway' });
    const first = metrics.counter({ name: 'a_total', help: 'a', labelNames: ['k'] });
    const second = metrics.counter({ name: 'a_total', help: 'a', labelNames: ['k'] });
    expect(second).toBe(first);
  });

  it('labels the first distinct operation names as sent, and every later new name as "other"', async () => {
    const metrics = createMetrics({ service: 'gateway', maxOperationNames: 3 });
    const server = new ApolloServer({
      typeDefs: 'type Query { ok: Boolean }',
      resolvers: { Query: { ok: () => true } },
      plugins: [createRequestMetricsPlugin(metrics)],
    });
    await server.start();
    try {
      const run = (name: string) => server.executeOperation({ query: `query ${name} { ok }` });
      for (const name of ['A', 'B', 'C']) await run(name);
      // A client inventing names: each would be a series of its own, for the life of the process.
      for (let i = 0; i < 50; i++) await run(`Random${i}`);
      await run('A');
      await server.executeOperation({ query: '{ ok }' });
      expect(await operationLabels(metrics)).toEqual(['A', 'B', 'C', 'anonymous', 'other']);
      const text = await metrics.registry.metrics();
      expect(text).toMatch(/^graphql_requests_total\{operation="other",[^}]*\} 50$/m);
      expect(text).toMatch(/^graphql_requests_total\{operation="A",[^}]*\} 2$/m);
    } finally {
      await server.stop();
    }
  });
});
