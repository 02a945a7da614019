import { context, SpanStatusCode, trace, type Context, type Tracer } from '@opentelemetry/api';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from '../../../lib/logger.ts';
import { extractTraceContext, SpanKind } from '../../../lib/observability/createTracing.ts';
import { requestIdFrom, withRequestId } from '../../../lib/observability/requestId.ts';

export type SubscriptionTransport = 'websocket' | 'sse';

/** One client subscription as the operator sees it: a request id, a span, a start and an end line. */
export interface ObservedSubscription {
  readonly requestId: string;
  /** Runs `fn` in the subscription's context: its log lines carry request_id and trace_id. */
  run<T>(fn: () => T): T;
  /** Names the operation once known (the client's operationName). */
  name(operationName: string | null | undefined): void;
  /** It is live: logged once. */
  started(): void;
  /** Errors the client was sent (a refusal, or a result carrying errors), by code. */
  failed(errors: readonly { extensions?: Record<string, unknown> | undefined }[]): void;
  /** It is over, however it ended: the end line, and the span ends. Idempotent. */
  end(): void;
}

/**
 * What traceRequests and the request log plugin give each HTTP operation, for subscriptions
 * (graphql-ws and graphql-sse bypass both): a request id (the client's `x-request-id` if sane,
 * else a new one), a server span (child of the client's `traceparent`) and log lines inside
 * them. A subscription lives for minutes or hours, so it logs when it starts and when it ends
 * (with its duration and the codes of any errors it was sent), and its span covers its life.
 */
export function observeSubscriptions({ logger, tracer }: { logger: Logger; tracer: Tracer }) {
  return {
    start({
      transport,
      headers,
      requestId: clientRequestId,
    }: {
      transport: SubscriptionTransport;
      /** The HTTP request (SSE) or upgrade request (WebSocket) headers: `traceparent`. */
      headers: IncomingHttpHeaders;
      /** The id the client asked for, if any. */
      requestId: unknown;
    }): ObservedSubscription {
      const requestId = requestIdFrom(typeof clientRequestId === 'string' ? clientRequestId : undefined);
      const parent = extractTraceContext(headers);
      const span = tracer.startSpan(
        'subscription anonymous',
        {
          kind: SpanKind.SERVER,
          attributes: {
            'request.id': requestId,
            'graphql.operation.type': 'subscription',
            'subscription.transport': transport,
          },
        },
        parent,
      );
      const ctx: Context = withRequestId(trace.setSpan(parent, span), requestId);
      const began = process.hrtime.bigint();
      let operation: string | null = null;
      const codes = new Set<string>();
      let live = false;
      let ended = false;
      const run = <T>(fn: () => T): T => context.with(ctx, fn);
      return {
        requestId,
        run,
        name(operationName) {
          if (!operationName || operation) return;
          operation = operationName;
          span.updateName(`subscription ${operationName}`);
          span.setAttribute('graphql.operation.name', operationName);
        },
        started() {
          if (live || ended) return;
          live = true;
          run(() => logger.info({ operation, transport }, 'subscription started'));
        },
        failed(errors) {
          for (const error of errors) {
            const code = error.extensions?.['code'];
            codes.add(typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR');
          }
        },
        end() {
          if (ended) return;
          ended = true;
          const durationMs = Math.round(Number(process.hrtime.bigint() - began) / 1e5) / 10;
          if (codes.size > 0) {
            span.setAttribute('graphql.error.codes', [...codes]);
            span.setStatus({ code: SpanStatusCode.ERROR, message: [...codes].join(', ') });
          }
          run(() =>
            logger.info(
              { operation, transport, durationMs, ...(codes.size > 0 && { errorCodes: [...codes] }) },
              live ? 'subscription ended' : 'subscription refused',
            ),
          );
          span.end();
        },
      };
    },
  };
}
export type SubscriptionObserver = ReturnType<typeof observeSubscriptions>;
