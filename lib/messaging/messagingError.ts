/**
 * Errors of the messaging adapters, shaped like kafkajs' KafkaJSError: `retriable` says whether
 * trying again later can succeed (broker away, timeout) or never will (bad message, auth).
 * Callers retry only what is retriable.
 */
export class MessagingError extends Error {
  readonly retriable: boolean;

  constructor(message: string, options: { retriable: boolean; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.name = 'MessagingError';
    this.retriable = options.retriable;
  }
}
