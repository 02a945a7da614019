import type { Database, Queryable } from '../../../lib/db/createDatabase.ts';
import { isUuid } from '../../../lib/ids.ts';
import { injectTraceHeaders } from '../../../lib/observability/createTracing.ts';

export type NotificationStatus = 'PENDING' | 'SENT' | 'FAILED';

export interface NotificationRecord {
  id: string;
  userId: string;
  kind: string;
  recipient: string;
  subject: string;
  body: string;
  status: NotificationStatus;
  attempts: number;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
  /** W3C trace headers of the event that created it (see migrations/002). */
  traceContext: Record<string, string>;
}

interface NotificationRow {
  id: string;
  user_id: string;
  kind: string;
  recipient: string;
  subject: string;
  body: string;
  status: NotificationStatus;
  attempts: number;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
  trace_context: Record<string, string> | string;
}

const toRecord = (row: NotificationRow): NotificationRecord => ({
  id: row.id,
  userId: row.user_id,
  kind: row.kind,
  recipient: row.recipient,
  subject: row.subject,
  body: row.body,
  status: row.status,
  attempts: row.attempts,
  lastError: row.last_error,
  createdAt: row.created_at,
  deliveredAt: row.delivered_at,
  traceContext:
    typeof row.trace_context === 'string'
      ? (JSON.parse(row.trace_context) as Record<string, string>)
      : row.trace_context,
});

export type NewNotification = Pick<
  NotificationRecord,
  'id' | 'userId' | 'kind' | 'recipient' | 'subject' | 'body'
>;

export type Claim =
  | { outcome: 'claimed'; notification: NotificationRecord }
  | { outcome: 'sent' }
  | { outcome: 'busy' }
  | { outcome: 'missing' };

export function createNotificationStore(db: Database) {
  return {
    /** Remembers where a user is emailed (from UserSignedUp); a redelivered event changes nothing. */
    async rememberRecipient(tx: Queryable, userId: string, email: string): Promise<void> {
      await tx.query(
        'INSERT INTO recipients (user_id, email) VALUES ($1, $2) ON CONFLICT (user_id) DO NOTHING',
        [userId, email],
      );
    },

    /** The email of a user seen signing up, or null for a user this service never heard of. */
    async recipientOf(tx: Queryable, userId: string): Promise<string | null> {
      const [row] = await tx.query<{ email: string }>('SELECT email FROM recipients WHERE user_id = $1', [
        userId,
      ]);
      return row?.email ?? null;
    },

    /** Idempotent: the same notification (same id) is recorded once. */
    async add(tx: Queryable, input: NewNotification): Promise<void> {
      await tx.query(
        `INSERT INTO notifications (id, user_id, kind, recipient, subject, body, status, trace_context)
         VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7) ON CONFLICT (id) DO NOTHING`,
        [
          input.id,
          input.userId,
          input.kind,
          input.recipient,
          input.subject,
          input.body,
          // Recorded while the event that caused it is being handled, inside its trace.
          JSON.stringify(injectTraceHeaders()),
        ],
      );
    },

    /**
     * Takes the notification for one delivery attempt, counting it. A SENT one is never taken
     * again (a duplicate job sends nothing), and a claimed one is left to its holder.
     */
    async claim(id: string, claimMs: number): Promise<Claim> {
      const [row] = await db.query<NotificationRow>(
        `UPDATE notifications
         SET attempts = attempts + 1, claimed_until = now() + make_interval(secs => $2::float8 / 1000)
         WHERE id = $1 AND status <> 'SENT' AND (claimed_until IS NULL OR claimed_until < now())
         RETURNING *`,
        [id, claimMs],
      );
      if (row) return { outcome: 'claimed', notification: toRecord(row) };
      const [current] = await db.query<{ status: NotificationStatus }>(
        'SELECT status FROM notifications WHERE id = $1',
        [id],
      );
      if (!current) return { outcome: 'missing' };
      return current.status === 'SENT' ? { outcome: 'sent' } : { outcome: 'busy' };
    },

    /** Notifications whose delivery job is not on the queue yet, oldest first. */
    async unenqueued(limit: number): Promise<NotificationRecord[]> {
      const rows = await db.query<NotificationRow>(
        'SELECT * FROM notifications WHERE enqueued_at IS NULL ORDER BY seq LIMIT $1',
        [limit],
      );
      return rows.map(toRecord);
    },

    async markEnqueued(ids: string[]): Promise<void> {
      await db.query('UPDATE notifications SET enqueued_at = now() WHERE id = ANY($1::uuid[])', [ids]);
    },

    async markSent(id: string): Promise<void> {
      await db.query(
        `UPDATE notifications SET status = 'SENT', delivered_at = now(), claimed_until = NULL, last_error = NULL
         WHERE id = $1`,
        [id],
      );
    },

    /** Records a failed attempt; `final` when no retry is left. */
    async markFailed(id: string, error: string, final: boolean): Promise<void> {
      await db.query(
        `UPDATE notifications SET last_error = $2, claimed_until = NULL,
           status = CASE WHEN $3::boolean THEN 'FAILED' ELSE status END
         WHERE id = $1 AND status <> 'SENT'`,
        [id, error.slice(0, 1_000), final],
      );
    },

    async latestFor(userId: string, limit: number): Promise<NotificationRecord[]> {
      if (!isUuid(userId)) return [];
      const rows = await db.query<NotificationRow>(
        'SELECT * FROM notifications WHERE user_id = $1 ORDER BY seq DESC LIMIT $2',
        [userId, limit],
      );
      return rows.map(toRecord);
    },

    async findById(id: string): Promise<NotificationRecord | null> {
      if (!isUuid(id)) return null;
      const [row] = await db.query<NotificationRow>('SELECT * FROM notifications WHERE id = $1', [id]);
      return row ? toRecord(row) : null;
    },
  };
}
export type NotificationStore = ReturnType<typeof createNotificationStore>;
