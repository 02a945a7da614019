import { randomUUID } from 'node:crypto';
import type { Database } from '../db/createDatabase.ts';
import type { Logger } from '../logger.ts';
import type { EventStream, OutgoingMessage } from '../messaging/eventStream.ts';
import type { Metrics } from '../observability/createMetrics.ts';
import { createPollingLoop } from '../resilience/createPollingLoop.ts';

export interface OutboxRelayOptions {
  db: Database;
  stream: EventStream;
  logger: Logger;
  /** Rows published per round trip. */
  batchSize?: number;
  /** How often to look for new events when nobody calls notify(). */
  pollIntervalMs?: number;
  /** How long a relay's leadership lasts without renewal; another replica takes over after it. */
  leaseMs?: number;
  /** Longest wait between attempts while the stream is down. */
  maxBackoffMs?: number;
  /** `outbox_backlog` (read at scrape time) and `outbox_published_total`. */
  metrics?: Metrics;
}

interface OutboxRow {
  id: string | number;
  topic: string;
  aggregate_id: string;
  event_id: string;
  event_type: string;
  envelope: unknown;
  headers: Record<string, string>;
}

/**
 * Publishes the outbox to the event stream, oldest first, and marks what the stream accepted.
 *
 * - Only one replica publishes at a time (a lease row), so events of one key leave in the
 *   order they were written. If a lease expires mid-publish, the next holder starts again from
 *   the oldest unpublished event: a duplicate is possible, a loss or reordering is not, and
 *   consumers are idempotent by eventId.
 * - When the stream is down nothing is skipped: the same batch is retried with exponential
 *   backoff and jitter, and everything behind it waits in the outbox.
 */
export function createOutboxRelay(options: OutboxRelayOptions) {
  const { db, stream, logger } = options;
  const batchSize = options.batchSize ?? 100;
  const pollIntervalMs = options.pollIntervalMs ?? 200;
  const leaseMs = options.leaseMs ?? 10_000;
  const holder = randomUUID();
  const published = options.metrics?.counter({
    name: 'outbox_published_total',
    help: 'Events this relay published from the outbox to the event stream',
    labelNames: ['topic'],
  });
  options.metrics?.gauge({
    name: 'outbox_backlog',
    help: 'Events written to the outbox and not yet published (grows while Kafka is away)',
    async collect() {
      this.set(await backlog().catch(() => -1));
    },
  });

  async function backlog(): Promise<number> {
    const [row] = await db.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM outbox WHERE published_at IS NULL',
    );
    return row?.count ?? 0;
  }

  // Until when (performance.now()) this relay's lease is surely still its own: it renews it only
  // once a third of it has gone by, not on every round (issue #7: a statement per round saved).
  let heldUntil = 0;

  async function holdLease(): Promise<boolean> {
    const asked = performance.now();
    const rows = await db.query(
      `INSERT INTO outbox_lease (id, holder, expires_at)
       VALUES (1, $1, now() + make_interval(secs => $2::float8 / 1000))
       ON CONFLICT (id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE outbox_lease.holder = EXCLUDED.holder OR outbox_lease.expires_at < now()
       RETURNING holder`,
      [holder, leaseMs],
    );
    // The lease runs leaseMs from the statement's own now(), which is later than `asked`.
    heldUntil = rows.length > 0 ? asked + leaseMs / 3 : 0;
    return rows.length > 0;
  }

  const leading = async () => performance.now() < heldUntil || (await holdLease());

  /** One batch: publish it topic by topic in id order, then mark what went out. */
  async function publishBatch(): Promise<number> {
    const rows = await db.query<OutboxRow>(
      `SELECT id, topic, aggregate_id, event_id, event_type, envelope, headers FROM outbox
       WHERE published_at IS NULL ORDER BY id LIMIT $1`,
      [batchSize],
    );
    if (rows.length === 0) return 0;
    const byTopic = new Map<string, OutboxRow[]>();
    for (const row of rows) byTopic.set(row.topic, [...(byTopic.get(row.topic) ?? []), row]);
    for (const [topic, topicRows] of byTopic) {
      const messages: OutgoingMessage[] = topicRows.map((row) => ({
        key: row.aggregate_id,
        value: typeof row.envelope === 'string' ? row.envelope : JSON.stringify(row.envelope),
        headers: {
          ...row.headers,
          'content-type': 'application/json',
          'event-id': row.event_id,
          'event-type': row.event_type,
        },
      }));
      await stream.publish(topic, messages);
      await db.query('UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])', [
        topicRows.map((row) => String(row.id)),
      ]);
      published?.inc({ topic }, topicRows.length);
    }
    return rows.length;
  }

  const loop = createPollingLoop({
    name: 'outbox relay',
    logger,
    pollIntervalMs,
    maxBackoffMs: options.maxBackoffMs,
    // Not the leader: look again when the current holder's lease may have run out.
    step: async () =>
      (await leading()) ? ((await publishBatch()) < batchSize ? undefined : 0) : leaseMs / 2,
  });

  async function publishPending(): Promise<number> {
    let total = 0;
    for (let n = await publishBatch(); n > 0; n = await publishBatch()) total += n;
    return total;
  }

  let started = false;
  return {
    start() {
      started = true;
      loop.start();
    },
    /** Publish soon: call after committing a transaction that appended events. */
    notify: () => loop.notify(),
    /** Everything pending, outside the loop (tests, and flushing at shutdown). */
    publishPending,
    backlog,
    /** Finishes the batch in flight, makes one last attempt to flush, and gives up the lease. */
    async stop() {
      if (!started) return;
      started = false;
      await loop.stop();
      try {
        if (await holdLease()) await publishPending();
      } catch (error) {
        logger.warn(
          { err: error },
          'outbox not fully flushed at shutdown; it will be published on next start',
        );
      }
      heldUntil = 0;
      await db.query('DELETE FROM outbox_lease WHERE holder = $1', [holder]).catch(() => {});
    },
  };
}
export type OutboxRelay = ReturnType<typeof createOutboxRelay>;
