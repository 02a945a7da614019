import { context, trace, type Tracer } from '@opentelemetry/api';
import type { RequestHandler } from 'express';
import { extractTraceContext, SpanKind } from './createTracing.ts';
import { REQUEST_ID_HEADER, requestIdFrom, withRequestId } from './requestId.ts';

/**
 * Express middleware: a server span per request, child of the caller's `traceparent` (the
 * gateway's, a sibling service's), and the request id (the client's `x-request-id` or a new one)
 * in the same async context, echoed in the response.
 *
 * body-parser resumes the chain from the socket's stream events, whose async context is not this
 * request's: mount this after the body parser, or before one whose `next` is bound to the active
 * context (the gateway's request limits do that, so that the requests they refuse have a request
 * id, a span and a log line too).
 */
export function traceRequests(tracer: Tracer): RequestHandler {
  return (req, res, next) => {
    const parent = extractTraceContext(req.headers);
    const requestId = requestIdFrom(req.headers[REQUEST_ID_HEADER]);
    res.setHeader(REQUEST_ID_HEADER, requestId);
    const span = tracer.startSpan(
      `${req.method} ${req.baseUrl}${req.path}`,
      { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method, 'request.id': requestId } },
      parent,
    );
    res.once('close', () => {
      span.setAttribute('http.response.status_code', res.statusCode);
      span.end();
    });
    context.with(withRequestId(trace.setSpan(parent, span), requestId), next);
  };
}
