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

/** An event as its outbox row: envelope and headers serialized, as they will be published. */
export interface OutboxRow<T = unknown> {
  envelope: EventEnvelope<T>;
  topic: string;
  /** The envelope's JSON, byte for byte what the relay publishes. */
  envelopeJson: string;
  headersJson: string;
}

export function toOutboxRow<T>(event: NewEvent<T>): OutboxRow<T> {
  const envelope: EventEnvelope<T> = {
    eventId: randomUUID(),
    eventType: event.eventType,
    occurredAt: new Date().toISOString(),
    aggregateId: event.aggregateId,
    version: event.version,
    data: event.data,
  };
  return {
    envelope,
    topic: event.topic,
    envelopeJson: JSON.stringify(envelope),
    // The trace of the request or saga step that wrote the event travels with it through
    // Kafka, so the consumers' work joins the same trace.
    headersJson: JSON.stringify(injectTraceHeaders({ ...event.headers })),
  };
}

/**
 * `INSERT INTO outbox` of any number of rows in one statement, from six array parameters
 * starting at `$firstParam` (give them with outboxParams). `condition` is SQL that must hold for
 * anything to be inserted: the statement can then sit in a CTE behind the write it announces.
 */
export function insertOutboxRows(firstParam: number, condition = 'true'): string {
  const p = (offset: number) => `$${firstParam + offset}`;
  return `INSERT INTO outbox (event_id, topic, aggregate_id, event_type, envelope, headers)
     SELECT e.event_id, e.topic, e.aggregate_id, e.event_type, e.envelope::json, e.headers::jsonb
     FROM unnest(${p(0)}::uuid[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::text[], ${p(5)}::text[])
       AS e (event_id, topic, aggregate_id, event_type, envelope, headers)
     WHERE ${condition}`;
}

/** The six parameters of insertOutboxRows, in its order. */
export function outboxParams(rows: readonly OutboxRow[]): unknown[] {
  return [
    rows.map((row) => row.envelope.eventId),
    rows.map((row) => row.topic),
    rows.map((row) => row.envelope.aggregateId),
    rows.map((row) => row.envelope.eventType),
    rows.map((row) => row.envelopeJson),
    rows.map((row) => row.headersJson),
  ];
}

/**
 * Records an event in the outbox. Call it with the transaction that changes the state the event
 * describes: both commit or neither does, so no event is published for a rolled-back change and
 * no change goes unannounced.
 */
export async function appendEvent<T>(tx: Queryable, event: NewEvent<T>): Promise<EventEnvelope<T>> {
  const [envelope] = await appendEvents(tx, [event]);
  return envelope!;
}

/** Several events in one statement (one round trip), in the order given; see appendEvent. */
export async function appendEvents<T>(
  tx: Queryable,
  events: readonly NewEvent<T>[],
): Promise<EventEnvelope<T>[]> {
  if (events.length === 0) return [];
  const rows = events.map(toOutboxRow);
  await tx.query(insertOutboxRows(1), outboxParams(rows));
  return rows.map((row) => row.envelope);
}
