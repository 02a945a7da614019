import { randomUUID } from 'node:crypto';
import { context, createContextKey, type Context } from '@opentelemetry/api';

/** The header a request id travels in, from the client (if it sent one) to every subgraph. */
export const REQUEST_ID_HEADER = 'x-request-id';

const REQUEST_ID = createContextKey('event-federation.request-id');

/** A client's request id if it is sane (short, printable), else a new one. */
export function requestIdFrom(header: string | string[] | undefined): string {
  const value = Array.isArray(header) ? header[0] : header;
  return value && /^[\w.:-]{1,128}$/.test(value) ? value : randomUUID();
}

/** `ctx` carrying `id`: the request id lives in the same async context as the trace. */
export function withRequestId(ctx: Context, id: string): Context {
  return ctx.setValue(REQUEST_ID, id);
}

/** The request id of the operation running now, if any. */
export function activeRequestId(): string | undefined {
  const id = context.active().getValue(REQUEST_ID);
  return typeof id === 'string' ? id : undefined;
}
