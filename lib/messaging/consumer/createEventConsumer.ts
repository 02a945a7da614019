import { fileURLToPath } from 'node:url';
import { context, type Tracer } from '@opentelemetry/api';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Database, Queryable } from '../../db/createDatabase.ts';
import type { MigrationSource } from '../../db/migrate.ts';
import type { Logger } from '../../logger.ts';
import type { Metrics } from '../../observability/createMetrics.ts';
import { extractTraceContext, SpanKind, withSpan } from '../../observability/createTracing.ts';
import { eventEnvelopeSchema, type EventEnvelope } from '../envelope.ts';
import type { EventStream, StreamMessage, StreamSubscription } from '../eventStream.ts';

/** The processed-events table, for a consuming service's `extraMigrations`. */
export const consumerMigrations: MigrationSource = {
  component: 'consumer',
  dir: fileURLToPath(new URL('./migrations', import.meta.url)),
};

/** Thrown by a handler for an event that no retry can fix: it goes to the DLQ at once. */
export class PermanentEventError extends Error {
  override name = 'PermanentEventError';
}

export interface EventConsumerOptions {
  /** Names the consumer group and the consumer in processed_events. */
  name: string;
  topics: string[];
  stream: EventStream;
  db: Database;
  logger: Logger;
  /**
   * The event types `handle` acts on; unset: every type. An event of another type has no effect
   * to apply or to deduplicate, so it is taken without a transaction (issue #7: order-events
   * carries every saga transition, and most consumers act on a few).
   */
  eventTypes?: readonly string[];
  /** Applies the event's effects with `tx`; the event counts as processed when tx commits. */
  handle: (event: EventEnvelope, tx: Queryable, message: StreamMessage) => Promise<void>;
  /** Called after an event's transaction committed (wake whoever acts on its effects). */
  onApplied?: (event: EventEnvelope) => void;
  /** Attempts per event before it is dead-lettered (transient failures only). */
  maxAttempts?: number;
  initialRetryDelayMs?: number;
  maxRetryDelayMs?: number;
  /** Records a consumer span per event, child of the producer's trace (from the headers). */
  tracer?: Tracer;
  /** `events_consumed_total` by outcome and `event_retries_total`, labelled with `name`. */
  metrics?: Metrics;
  /** Where an event that cannot be processed goes (default `<topic>.dlq`). */
  deadLetterTopic?: (topic: string) => string;
}

/**
 * An idempotent, at-least-once consumer over the event-stream port:
 * - the event id is recorded in processed_events in the same transaction as the handler's
 *   effects, so a redelivered event changes nothing;
 * - a failing handler is retried with exponential backoff and jitter, up to `maxAttempts`;
 * - a malformed event, a PermanentEventError, or an event still failing after its retries is
 *   published to the dead-letter topic with the error in its headers, and the consumer moves
 *   on. If even the DLQ cannot be reached, the message is not committed and comes back later:
 *   nothing is dropped.
 */
export function createEventConsumer(options: EventConsumerOptions) {
  const { name, stream, db, logger } = options;
  const maxAttempts = options.maxAttempts ?? 5;
  const backoffFactory = new ExponentialBackoff({
    initialDelay: options.initialRetryDelayMs ?? 200,
    maxDelay: options.maxRetryDelayMs ?? 10_000,
  });
  const deadLetterTopic = options.deadLetterTopic ?? ((topic: string) => `${topic}.dlq`);
  let subscription: StreamSubscription | undefined;
  const consumed = options.metrics?.counter({
    name: 'events_consumed_total',
    help: 'Events taken from the stream, by consumer and outcome (applied, duplicate, dead_lettered, skipped: a type it does not act on)',
    labelNames: ['consumer', 'outcome'],
  });
  const lag = options.metrics?.gauge({
    name: 'event_consumer_lag',
    help: 'Messages of a partition this consumer group has yet to handle (Kafka consumer lag)',
    labelNames: ['consumer', 'topic', 'partition'],
  });
  const retries = options.metrics?.counter({
    name: 'event_retries_total',
    help: 'Failed attempts at handling an event that were retried',
    labelNames: ['consumer'],
  });
  let stopping = false;
  const wanted = options.eventTypes && new Set(options.eventTypes);

  async function deadLetter(message: StreamMessage, error: unknown, attempts: number) {
    const reason = error instanceof Error ? error.message : String(error);
    logger.error(
      { err: error, topic: message.topic, offset: message.offset, attempts },
      'event dead-lettered',
    );
    await stream.publish(deadLetterTopic(message.topic), [
      {
        key: message.key,
        value: message.value,
        headers: {
          ...message.headers,
          'x-error': reason.slice(0, 1_000),
          'x-error-type': error instanceof Error ? error.name : 'Error',
          'x-attempts': String(attempts),
          'x-consumer': name,
          'x-original-topic': message.topic,
          'x-original-partition': String(message.partition),
          'x-original-offset': message.offset,
          'x-failed-at': new Date().toISOString(),
        },
      },
    ]);
  }

  /** Applies the event once; false when it had already been processed. */
  async function applyOnce(event: EventEnvelope, message: StreamMessage): Promise<boolean> {
    return db.transaction(async (tx) => {
      const inserted = await tx.query(
        `INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2)
         ON CONFLICT DO NOTHING RETURNING event_id`,
        [name, event.eventId],
      );
      if (inserted.length === 0) return false;
      await options.handle(event, tx, message);
      return true;
    });
  }

  /** Handles the message inside the trace its producer wrote into the headers. */
  function onMessage(message: StreamMessage): Promise<void> {
    const parent = extractTraceContext(message.headers);
    if (!options.tracer) return context.with(parent, () => handleMessage(message));
    return withSpan(
      options.tracer,
      `consume ${message.topic}`,
      {
        kind: SpanKind.CONSUMER,
        parent,
        attributes: { 'messaging.destination.name': message.topic, 'messaging.consumer.group.name': name },
      },
      () => handleMessage(message),
    );
  }

  async function handleMessage(message: StreamMessage) {
    let event: EventEnvelope;
    try {
      event = eventEnvelopeSchema.parse(JSON.parse(message.value));
    } catch (error) {
      await deadLetter(message, new PermanentEventError(`malformed event: ${(error as Error).message}`), 0);
      consumed?.inc({ consumer: name, outcome: 'dead_lettered' });
      return;
    }
    if (wanted && !wanted.has(event.eventType)) {
      consumed?.inc({ consumer: name, outcome: 'skipped' });
      return;
    }
    let backoff: IBackoff<unknown> | undefined;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const applied = await applyOnce(event, message);
        if (applied) options.onApplied?.(event);
        else logger.debug({ eventId: event.eventId }, 'duplicate event ignored');
        consumed?.inc({ consumer: name, outcome: applied ? 'applied' : 'duplicate' });
        return;
      } catch (error) {
        if (error instanceof PermanentEventError || attempt >= maxAttempts) {
          await deadLetter(message, error, attempt);
          consumed?.inc({ consumer: name, outcome: 'dead_lettered' });
          return;
        }
        // Shutting down: leave the event uncommitted, the next run retries it.
        if (stopping) throw error;
        backoff = backoff ? backoff.next(undefined) : backoffFactory.next();
        retries?.inc({ consumer: name });
        logger.warn(
          { err: error, eventId: event.eventId, attempt, retryInMs: Math.round(backoff.duration) },
          'event handler failed; retrying',
        );
        await new Promise((resolve) => setTimeout(resolve, backoff!.duration));
      }
    }
  }

  return {
    async start() {
      stopping = false;
      subscription = await stream.subscribe({
        groupId: name,
        topics: options.topics,
        handle: onMessage,
        onLag:
          lag &&
          ((l) => lag.set({ consumer: name, topic: l.topic, partition: String(l.partition) }, l.messages)),
      });
    },
    /** Stops after the event in progress. */
    async stop() {
      stopping = true;
      await subscription?.stop();
      subscription = undefined;
    },
  };
}
export type EventConsumer = ReturnType<typeof createEventConsumer>;
