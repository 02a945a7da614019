import { createServer } from 'node:http';
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../logger.ts';
import { listen } from '../http/listen.ts';
import { createTracing, extractTraceContext, injectTraceHeaders, withSpan } from './createTracing.ts';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const incoming = { traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01` };

function captureLogs() {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', service: 'test', destination }) };
}

describe('tracing', () => {
  it('continues the caller’s trace and hands it on to the next hop', async () => {
    const { tracer } = createTracing({ service: 'test' });
    const outgoing = await withSpan(tracer, 'handle', { parent: extractTraceContext(incoming) }, async () =>
      injectTraceHeaders(),
    );
    expect(outgoing['traceparent']).toMatch(new RegExp(`^00-${TRACE_ID}-[0-9a-f]{16}-01$`));
    expect(outgoing['traceparent']).not.toBe(incoming.traceparent);
  });

  it('stamps every log line written inside a span with its trace id, and none outside', async () => {
    const { tracer } = createTracing({ service: 'test' });
    const { lines, logger } = captureLogs();
    logger.info('before');
    await withSpan(tracer, 'work', { parent: extractTraceContext(incoming) }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 1));
      logger.info('inside, after an await');
    });
    expect(lines[0]).not.toHaveProperty('trace_id');
    expect(lines[1]).toMatchObject({ trace_id: TRACE_ID, msg: 'inside, after an await' });
  });

  it('ignores a malformed traceparent and starts a new trace', async () => {
    const { tracer } = createTracing({ service: 'test' });
    const outgoing = await withSpan(
      tracer,
      'handle',
      { parent: extractTraceContext({ traceparent: 'garbage' }) },
      async () => injectTraceHeaders(),
    );
    expect(outgoing['traceparent']).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(outgoing['traceparent']).not.toContain(TRACE_ID);
  });

  it('exports spans over OTLP/HTTP when an endpoint is configured', async () => {
    const received: { path: string | undefined; body: string }[] = [];
    const collector = createServer((req, res) => {
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
      req.on('end', () => {
        received.push({ path: req.url, body });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    const port = await listen(collector, 0, '127.0.0.1');
    try {
      const tracing = createTracing({ service: 'orders', otlpEndpoint: `http://127.0.0.1:${port}` });
      await withSpan(tracing.tracer, 'placeOrder', { parent: extractTraceContext(incoming) }, async () => {});
      await tracing.shutdown();
      expect(received).toHaveLength(1);
      expect(received[0]?.path).toBe('/v1/traces');
      // OTLP/HTTP's JSON encoding: the service name, span name and trace id appear as text.
      expect(received[0]?.body).toContain('orders');
      expect(received[0]?.body).toContain('placeOrder');
      expect(received[0]?.body).toContain(TRACE_ID);
    } finally {
      collector.close();
    }
  });
});
