import { MessagingError } from '../messagingError.ts';

/**
 * AMQP reply codes that retrying cannot fix: 403 ACCESS_REFUSED, 404 NOT_FOUND, 405
 * RESOURCE_LOCKED, 406 PRECONDITION_FAILED (e.g. a queue redeclared with other arguments),
 * 530 NOT_ALLOWED, 540 NOT_IMPLEMENTED. Everything else (socket errors, 320 CONNECTION_FORCED,
 * timeouts, a closed channel) is the broker being away, which heals.
 */
const PERMANENT_REPLY_CODES = new Set([403, 404, 405, 406, 530, 540]);

/** Wraps an amqplib failure in a MessagingError that says whether retrying can help. */
export function toMessagingError(error: unknown, context: string): MessagingError {
  if (error instanceof MessagingError) return error;
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  return new MessagingError(`${context}: ${message}`, {
    retriable: !(typeof code === 'number' && PERMANENT_REPLY_CODES.has(code)),
    cause: error,
  });
}
