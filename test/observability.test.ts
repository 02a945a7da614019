import { createServer } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listen } from '../lib/http/listen.ts';
import { ADMIN, createProduct, logIn, signUp } from './support/fixtures.ts';
import { eventually } from './support/eventually.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { collectLogLines } from './support/collectLogLines.ts';

type LogLine = Record<string, unknown> & { service?: string; msg?: string; trace_id?: string };

/**
 * Prometheus text exposition: comments, blank lines, or `name{labels} value`. Prometheus reads
 * values with Go's ParseFloat, which takes NaN in any case: prom-client writes `Nan` (for an
 * event-loop lag not yet sampled).
 */
const SAMPLE =
  /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? -?([0-9.e+-]+|[Nn][Aa][Nn]|\+Inf|-Inf)$/;

function sampleValue(text: string, name: string, labels: Record<string, string>): number {
  const line = text
    .split('\n')
    .find(
      (l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const mapValues = <T, U>(record: Record<string, T>, fn: (value: T) => U): Record<string, U> =>
  Object.fromEntries(Object.entries(record).map(([key, value]) => [key, fn(value)]));

describe('metrics, logs and traces', () => {
  let system: TestSystem;
  const gatewayMetrics = () => fetch(new URL('/metrics', system.gatewayUrl)).then((r) => r.text());
  const logs: LogLine[] = [];
  const exported: Buffer[] = [];
  const collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      exported.push(Buffer.concat(chunks));
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });

  beforeAll(async () => {
    const port = await listen(collector, 0, '127.0.0.1');
    system = await startTestSystem(
      { LOG_LEVEL: 'debug', OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}` },
      {
        logDestination: collectLogLines(logs),
      },
    );
  });
  afterAll(async () => {
    await system?.stop();
    collector.close();
  });

  it('serves Prometheus text on the gateway and every subgraph, and its counters move with traffic', async () => {
    const before = await gatewayMetrics();
    await system.graphql('query Products { products(first: 1) { edges { node { id } } } }');
    await system.graphql('query Products { products(first: 1) { edges { node { id } } } }');
    // An error: counted by its code, and as an operation whose outcome was an error.
    const invalid = await system.graphql('{ products { edges { node { nme } } } }');
    expect(invalid.errors?.[0]?.extensions?.['code']).toBe('GRAPHQL_VALIDATION_FAILED');
    const after = await gatewayMetrics();
    const moved = (name: string, labels: Record<string, string>) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(moved('graphql_requests_total', { operation: 'Products', outcome: 'ok' })).toBe(2);
    expect(moved('graphql_request_duration_seconds_count', { operation: 'Products' })).toBe(2);
    // Not validated, so not resolved: its name and type are not known yet.
    expect(moved('graphql_requests_total', { type: 'unknown', outcome: 'error' })).toBe(1);
    expect(moved('graphql_errors_total', { code: 'GRAPHQL_VALIDATION_FAILED' })).toBe(1);
    expect(moved('gateway_subgraph_requests_total', { subgraph: 'products', outcome: 'ok' })).toBe(2);

    const services = { gateway: system.gatewayUrl, ...mapValues(system.subgraphs, (s) => s.url) };
    for (const [name, url] of Object.entries(services)) {
      const response = await fetch(new URL('/metrics', url));
      expect(response.headers.get('content-type'), name).toMatch(/^text\/plain/);
      const text = await response.text();
      const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
      expect(
        samples.filter((l) => !SAMPLE.test(l)),
        name,
      ).toEqual([]);
      expect(text, name).toContain(`process_resident_memory_bytes{service="${name}"}`);
    }
  });

  it('logs and counts the requests the gateway refuses before GraphQL runs, with their request id', async () => {
    const traceId = 'b1b2c3d4e5f60718293a4b5c6d7e8f91';
    const refused = async (requestId: string, body: string) => {
      const response = await fetch(system.gatewayUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-request-id': requestId,
          traceparent: `00-${traceId}-1111111111111111-01`,
        },
        body,
      });
      expect(response.headers.get('x-request-id')).toBe(requestId);
      return response.status;
    };
    const before = await gatewayMetrics();
    const tooLong = JSON.stringify(Array.from({ length: 11 }, () => ({ query: '{ me { id } }' })));
    expect(await refused('refused-batch', tooLong)).toBe(400);
    expect(await refused('refused-json', '{"query": ')).toBe(400);
    const after = await gatewayMetrics();
    const moved = (name: string, labels: Record<string, string>) =>
      sampleValue(after, name, labels) - sampleValue(before, name, labels);
    expect(moved('graphql_errors_total', { code: 'OPERATION_LIMIT' })).toBe(1);
    expect(moved('graphql_errors_total', { code: 'BAD_REQUEST' })).toBe(1);
    expect(moved('graphql_requests_total', { type: 'unknown', outcome: 'error' })).toBe(2);

    const lineOf = (requestId: string) =>
      logs.find((l) => l['service'] === 'gateway' && l['request_id'] === requestId);
    expect(lineOf('refused-batch')).toMatchObject({
      msg: 'graphql request refused',
      trace_id: traceId,
      status: 400,
      errorCodes: ['OPERATION_LIMIT'],
    });
    expect(lineOf('refused-json')).toMatchObject({
      msg: 'graphql request refused',
      trace_id: traceId,
      errorCodes: ['BAD_REQUEST'],
    });
  });

  it('follows one order by its trace id from the gateway’s log line into orders, analytics and notifications', async () => {
    const admin = await logIn(system, ADMIN.email, ADMIN.password);
    const product = await createProduct(system, admin, { stock: 5 });
    const user = await signUp(system, 'Tracy');
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const response = await fetch(system.gatewayUrl, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${user.token}`,
        traceparent: `00-${traceId}-1111111111111111-01`,
        'x-request-id': 'order-trace-test',
      },
      body: JSON.stringify({
        query: 'mutation Place($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }',
        variables: { input: { items: [{ productId: product.id, quantity: 1 }], paymentToken: 'tok_visa' } },
      }),
    });
    expect(response.headers.get('x-request-id')).toBe('order-trace-test');
    const body = (await response.json()) as { data: { placeOrder: { status: string } } };
    expect(body.data.placeOrder.status).toBe('CONFIRMED');

    const gatewayLine = logs.find((l) => l['service'] === 'gateway' && l['operation'] === 'Place');
    expect(gatewayLine).toMatchObject({ trace_id: traceId, request_id: 'order-trace-test' });
    const traced = (service: string) =>
      logs.filter((l) => l['service'] === service && l.trace_id === traceId);
    // The saga's calls carry the trace to the siblings; the order's events carry it through Kafka
    // to analytics and notifications, and the notification's job carries it through RabbitMQ to
    // the email.
    expect(traced('orders').length).toBeGreaterThan(0);
    expect(traced('products').length).toBeGreaterThan(0);
    expect(traced('payments').length).toBeGreaterThan(0);
    await eventually(
      async () => traced('analytics').map((l) => `${String(l.msg)}:${String(l['eventType'])}`),
      (lines) => lines.includes('order event applied:OrderConfirmed'),
    );
    await eventually(
      async () => traced('notifications').map((l) => `${String(l.msg)}:${String(l['kind'])}`),
      (lines) => lines.includes('notification sent:ORDER_CONFIRMED'),
    );

    // The same journey in the services' series: the outbox drained, the event consumed once,
    // the email sent through the queue.
    const metricsOf = (name: keyof TestSystem['subgraphs']) =>
      fetch(new URL('/metrics', system.subgraphs[name].url)).then((r) => r.text());
    await eventually(
      () => metricsOf('orders'),
      (text) =>
        sampleValue(text, 'outbox_published_total', {}) > 0 && /^outbox_backlog\{[^}]*\} 0$/m.test(text),
    );
    const orders = await metricsOf('orders');
    expect(sampleValue(orders, 'saga_outcomes_total', { outcome: 'confirmed' })).toBeGreaterThan(0);
    expect(
      sampleValue(orders, 'saga_step_duration_seconds_count', {
        step: 'CHARGE_PAYMENT',
        outcome: 'succeeded',
      }),
    ).toBeGreaterThan(0);
    const notifications = await metricsOf('notifications');
    expect(
      sampleValue(notifications, 'events_consumed_total', { consumer: 'notifications', outcome: 'applied' }),
    ).toBeGreaterThan(0);
    expect(notifications).toMatch(/^event_consumer_lag\{[^}]*consumer="notifications"[^}]*\} \d+$/m);
    expect(
      sampleValue(notifications, 'notification_deliveries_total', {
        kind: 'ORDER_CONFIRMED',
        outcome: 'sent',
      }),
    ).toBeGreaterThan(0);

    // Exported over OTLP/HTTP (JSON encoding): the collector received spans of that trace.
    await eventually(
      async () => exported.filter((payload) => payload.toString().includes(traceId)).length,
      (count) => count > 0,
    );
  });
});
