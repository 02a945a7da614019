import {
  context,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type Span,
  type Tracer,
} from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

export { SpanKind };

export interface Tracing {
  tracer: Tracer;
  /** Flushes spans still buffered for export, then stops exporting. Idempotent. */
  shutdown(): Promise<void>;
}

/**
 * The context manager and propagator are process-wide by OpenTelemetry's design (the API's
 * `context` and `propagation` are globals). Registering them is idempotent, so every service of
 * a one-process system can call this; each service still has its own tracer provider, so its
 * spans carry its own `service.name`.
 */
function ensureGlobalContext() {
  if (propagation.fields().includes('traceparent')) return;
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
}

/**
 * A service's tracer. Spans are always created, so trace ids travel through HTTP headers, Kafka
 * and RabbitMQ headers and into every log line; they leave the process only when an OTLP
 * endpoint is configured (issue #6: "exported over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set
 * and off otherwise").
 */
export function createTracing({
  service,
  otlpEndpoint,
}: {
  service: string;
  otlpEndpoint?: string;
}): Tracing {
  ensureGlobalContext();
  const spanProcessors = otlpEndpoint
    ? [
        new BatchSpanProcessor(
          new OTLPTraceExporter({ url: `${otlpEndpoint.replace(/\/$/, '')}/v1/traces` }),
          // Short delay: a trace shows up in the collector while the user still looks for it.
          { scheduledDelayMillis: 1_000 },
        ),
      ]
    : [];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors,
  });
  let stopping: Promise<void> | undefined;
  return {
    tracer: provider.getTracer('event-federation'),
    shutdown: () => (stopping ??= provider.shutdown()),
  };
}

/** Writes the active trace context into message or request headers (W3C `traceparent`). */
export function injectTraceHeaders(
  headers: Record<string, string> = {},
  from: Context = context.active(),
): Record<string, string> {
  propagation.inject(from, headers);
  return headers;
}

/** The trace context a message or request carried, as a parent for the span that handles it. */
export function extractTraceContext(headers: Record<string, string | string[] | undefined>): Context {
  const flat: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (typeof value === 'string') flat[name.toLowerCase()] = value;
    else if (Array.isArray(value) && value[0] !== undefined) flat[name.toLowerCase()] = value[0];
  }
  return propagation.extract(context.active(), flat);
}

/**
 * Runs `fn` inside a new span (child of `parent`, else of the active span), records a thrown
 * error on it and ends it however `fn` settles.
 */
export async function withSpan<T>(
  tracer: Tracer,
  name: string,
  options: { kind?: SpanKind; attributes?: Record<string, string | number | boolean>; parent?: Context },
  fn: (span: Span) => Promise<T>,
): Promise<T> {
  const parent = options.parent ?? context.active();
  const span = tracer.startSpan(name, { kind: options.kind, attributes: options.attributes }, parent);
  try {
    return await context.with(trace.setSpan(parent, span), () => fn(span));
  } catch (error) {
    span.recordException(error instanceof Error ? error : String(error));
    span.setStatus({
      code: SpanStatusCode.ERROR,
      message: error instanceof Error ? error.message : undefined,
    });
    throw error;
  } finally {
    span.end();
  }
}

/** Trace and span ids of the active span, for log lines (empty outside any span). */
export function activeTraceIds(): { trace_id?: string; span_id?: string } {
  const span = trace.getSpan(context.active());
  if (!span) return {};
  const { traceId, spanId, traceFlags } = span.spanContext();
  // A context extracted from a malformed header has the all-zero invalid id: not worth logging.
  if (!traceId || /^0+$/.test(traceId) || traceFlags === undefined) return {};
  return { trace_id: traceId, span_id: spanId };
}
