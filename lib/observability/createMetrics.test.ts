import { describe, expect, it } from 'vitest';
import { createMetrics } from './createMetrics.ts';

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
});
