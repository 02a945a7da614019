import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import type { Queryable } from '../db/createDatabase.ts';
import type { MigrationSource } from '../db/migrate.ts';
import type { EventEnvelope } from '../messaging/envelope.ts';
import { injectTraceHeaders } from '../observability/createTracing.ts';

/** The outbox tables, for a service's `extraMigrations`. */
export const outboxMigrations: MigrationSource = {
  component: 'outbox',
  dir: fileURLToPath(new URL('./migrations', import.meta.url)),
};

export interface NewEvent<T> {
  topic: string;
  eventType: string;
  aggregateId: string;
  version: number;
  data: T;
  headers?: Record<string, string>;
}

/**
 * Records an event in the outbox. Call it with the transaction that changes the state the event
 * describes: both commit or neither does, so no event is published for a rolled-back change and
 * no change goes unannounced.
 */
export async function appendEvent<T>(tx: Queryable, event: NewEvent<T>): Promise<EventEnvelope<T>> {
  const envelope: EventEnvelope<T> = {
    eventId: randomUUID(),
    eventType: event.eventType,
    occurredAt: new Date().toISOString(),
    aggregateId: event.aggregateId,
    version: event.version,
    data: event.data,
  };
  await tx.query(
    `INSERT INTO outbox (event_id, topic, aggregate_id, event_type, envelope, headers)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [
      envelope.eventId,
      event.topic,
      event.aggregateId,
      event.eventType,
      JSON.stringify(envelope),
      // The trace of the request or saga step that wrote the event travels with it through
      // Kafka, so the consumers' work joins the same trace.
      JSON.stringify(injectTraceHeaders({ ...event.headers })),
    ],
  );
  return envelope;
}
