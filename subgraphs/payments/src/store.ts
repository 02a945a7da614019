import { randomUUID } from 'node:crypto';
import { isUniqueViolation, type Database, type Queryable } from '../../../lib/db/createDatabase.ts';
import { findByUuids } from '../../../lib/db/findByUuids.ts';

export type PaymentStatus = 'CAPTURED' | 'DECLINED' | 'FAILED' | 'REFUNDED';

export interface PaymentRecord {
  id: string;
  orderId: string;
  userId: string;
  amountCents: number;
  status: PaymentStatus;
  attempts: number;
  refundedCents: number;
  /** The charge request's idempotency key; null for payments recorded without one (demo data). */
  idempotencyKey: string | null;
  /** Why the payment is DECLINED or FAILED. */
  reason: string | null;
  providerChargeId: string | null;
  createdAt: Date;
}

interface PaymentRow {
  id: string;
  order_id: string;
  user_id: string;
  amount_cents: number;
  status: PaymentStatus;
  attempts: number;
  refunded_cents: number;
  idempotency_key: string | null;
  reason: string | null;
  provider_charge_id: string | null;
  created_at: Date;
}

const toRecord = (row: PaymentRow): PaymentRecord => ({
  id: row.id,
  orderId: row.order_id,
  userId: row.user_id,
  amountCents: row.amount_cents,
  status: row.status,
  attempts: row.attempts,
  refundedCents: row.refunded_cents,
  idempotencyKey: row.idempotency_key,
  reason: row.reason,
  providerChargeId: row.provider_charge_id,
  createdAt: row.created_at,
});

export class DuplicatePaymentError extends Error {}

export type NewPayment = Pick<
  PaymentRecord,
  'orderId' | 'userId' | 'amountCents' | 'status' | 'attempts' | 'refundedCents'
> &
  Partial<Pick<PaymentRecord, 'id' | 'idempotencyKey' | 'reason' | 'providerChargeId'>>;

/** What a charge call finds when it asks for its idempotency key. */
export type ChargeClaim =
  /** This call owns the key: it calls the provider and stores the outcome. */
  | { kind: 'owned' }
  /** The key's outcome is stored. */
  | { kind: 'done'; payment: PaymentRecord }
  /** Another call owns the key and is still running. */
  | { kind: 'busy' }
  /** The key was voided before an outcome was stored: the charge must not reach the processor. */
  | { kind: 'voided' }
  | { kind: 'conflict'; message: string };

/** What voiding a charge key finds (see migrations/003_charge_voids.sql). */
export type VoidClaim =
  /** The charge's outcome is stored: a capture must be refunded now. */
  | { kind: 'done'; payment: PaymentRecord }
  /** A call is charging under the key right now: it refunds its capture itself when it ends. */
  | { kind: 'running' }
  /** Nothing was charged under the key (or its charger died before storing an outcome), and nothing will be. */
  | { kind: 'voided' }
  | { kind: 'conflict'; message: string };

const INSERT_PAYMENT = `INSERT INTO payments (id, order_id, user_id, amount_cents, status, attempts, refunded_cents,
                           idempotency_key, reason, provider_charge_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
     ON CONFLICT (idempotency_key) DO NOTHING
     RETURNING *`;

const insertPaymentParams = (input: NewPayment) => [
  input.id ?? randomUUID(),
  input.orderId,
  input.userId,
  input.amountCents,
  input.status,
  input.attempts,
  input.refundedCents,
  input.idempotencyKey ?? null,
  input.reason ?? null,
  input.providerChargeId ?? null,
];

async function insertPayment(db: Queryable, input: NewPayment): Promise<PaymentRow | undefined> {
  const [row] = await db.query<PaymentRow>(INSERT_PAYMENT, insertPaymentParams(input));
  return row;
}

export function createPaymentStore(db: Database) {
  return {
    async create(input: NewPayment): Promise<PaymentRecord> {
      try {
        const row = await insertPayment(db, input);
        if (!row) throw new DuplicatePaymentError(input.orderId);
        return toRecord(row);
      } catch (error) {
        if (isUniqueViolation(error)) throw new DuplicatePaymentError(input.orderId);
        throw error;
      }
    },
    findByIds: (ids: readonly string[]) =>
      findByUuids(
        db,
        'SELECT * FROM payments WHERE id = ANY($1::uuid[])',
        ids,
        (row: PaymentRow) => row.id,
        toRecord,
      ),
    findByOrderIds: (orderIds: readonly string[]) =>
      findByUuids(
        db,
        'SELECT * FROM payments WHERE order_id = ANY($1::uuid[])',
        orderIds,
        (row: PaymentRow) => row.order_id,
        toRecord,
      ),

    /**
     * Takes the charge's idempotency key before the provider is called. The first call inserts
     * the request row and owns it for `leaseMs`; a racing call with the same key finds the row
     * (the unique key makes it wait for the first insert) and is told to wait; once the lease has
     * run out (its owner died mid-charge) the next call takes the key over.
     */
    async claimCharge(request: {
      idempotencyKey: string;
      orderId: string;
      fingerprint: string;
      leaseMs: number;
    }): Promise<ChargeClaim> {
      const { idempotencyKey, orderId, fingerprint, leaseMs } = request;
      // A new key, the common case, is owned by this one statement, without a transaction
      // (issue #7). When the key exists it changes nothing, and the transaction below reads the
      // key in a statement of its own, as it did after this insert when both were one transaction.
      const inserted = await db.query(
        `INSERT INTO charge_requests (idempotency_key, order_id, fingerprint, claimed_until)
         SELECT $1, $2, $3, now() + $4::integer * interval '1 millisecond'
         -- A payment recorded without a request (demo data) also means the order is charged.
         WHERE NOT EXISTS (SELECT 1 FROM payments WHERE order_id = $2 AND idempotency_key IS DISTINCT FROM $1)
         ON CONFLICT DO NOTHING
         RETURNING idempotency_key`,
        [idempotencyKey, orderId, fingerprint, leaseMs],
      );
      if (inserted.length > 0) return { kind: 'owned' };
      return db.transaction(async (tx): Promise<ChargeClaim> => {
        const [existing] = await tx.query<{
          order_id: string;
          fingerprint: string | null;
          payment_id: string | null;
          voided: boolean;
          expired: boolean;
        }>(
          `SELECT order_id, fingerprint, payment_id, voided_at IS NOT NULL AS voided,
                  (claimed_until IS NULL OR claimed_until <= now()) AS expired
           FROM charge_requests WHERE idempotency_key = $1 FOR UPDATE`,
          [idempotencyKey],
        );
        if (!existing) {
          return {
            kind: 'conflict',
            message: `order ${orderId} is already charged under another idempotency key`,
          };
        }
        // A void marker has no fingerprint, only the order it was voided for.
        const sameRequest =
          existing.fingerprint === null
            ? existing.order_id === orderId.toLowerCase()
            : existing.fingerprint === fingerprint;
        if (!sameRequest) {
          return {
            kind: 'conflict',
            message: `idempotency key ${idempotencyKey} was already used for a charge with other parameters`,
          };
        }
        if (existing.payment_id) {
          const [row] = await tx.query<PaymentRow>('SELECT * FROM payments WHERE id = $1', [
            existing.payment_id,
          ]);
          return { kind: 'done', payment: toRecord(row!) };
        }
        // Voided before anyone charged, or its charger died after the void: never charged now.
        if (existing.voided && (existing.fingerprint === null || existing.expired)) return { kind: 'voided' };
        if (!existing.expired) return { kind: 'busy' };
        await tx.query(
          `UPDATE charge_requests SET claimed_until = now() + $2::integer * interval '1 millisecond'
           WHERE idempotency_key = $1`,
          [idempotencyKey, leaseMs],
        );
        return { kind: 'owned' };
      });
    },

    /**
     * Stores a charge's outcome and closes its request. When a call that took the key over has
     * already stored one, that stored payment wins: both saw the provider's answer to one key.
     * `voided` says the key was voided meanwhile: a capture must then be refunded at once.
     */
    async completeCharge(
      payment: NewPayment & { idempotencyKey: string },
    ): Promise<{ payment: PaymentRecord; voided: boolean }> {
      // One statement (issue #7): the outcome (or the one stored first under the key) and its
      // request closed, atomically as the transaction below. The request's row lock orders this
      // against voidCharge: a void either sees the outcome or is seen here.
      const [stored] = await db.query<PaymentRow & { voided: boolean }>(
        `WITH inserted AS (${INSERT_PAYMENT}), stored AS (
           SELECT * FROM inserted
           UNION ALL
           SELECT * FROM payments WHERE idempotency_key = $8 AND NOT EXISTS (SELECT 1 FROM inserted)
         ), request AS (
           UPDATE charge_requests SET payment_id = stored.id, claimed_until = NULL
           FROM stored WHERE charge_requests.idempotency_key = $8
           RETURNING voided_at IS NOT NULL AS voided
         )
         SELECT stored.*, COALESCE((SELECT voided FROM request), false) AS voided FROM stored`,
        insertPaymentParams(payment),
      );
      if (stored) return { payment: toRecord(stored), voided: stored.voided };
      // Nothing: another call stored its outcome under the key after this statement's snapshot
      // was taken (the insert waited for it). Its outcome wins, read in statements of their own.
      return db.transaction(async (tx) => {
        const row =
          (await insertPayment(tx, payment)) ??
          (
            await tx.query<PaymentRow>('SELECT * FROM payments WHERE idempotency_key = $1', [
              payment.idempotencyKey,
            ])
          )[0]!;
        // The row lock orders this against voidCharge: a void either sees the outcome or is seen here.
        const [request] = await tx.query<{ voided: boolean }>(
          `UPDATE charge_requests SET payment_id = $2, claimed_until = NULL WHERE idempotency_key = $1
           RETURNING voided_at IS NOT NULL AS voided`,
          [payment.idempotencyKey, row.id],
        );
        return { payment: toRecord(row), voided: request?.voided ?? false };
      });
    },

    /**
     * Voids the charge key of an order: records the void (a marker row when nothing claimed the
     * key yet) and says what the caller must still do about its outcome.
     */
    voidCharge({ idempotencyKey, orderId }: { idempotencyKey: string; orderId: string }): Promise<VoidClaim> {
      return db.transaction(async (tx): Promise<VoidClaim> => {
        const marked = await tx.query(
          `INSERT INTO charge_requests (idempotency_key, order_id, fingerprint, voided_at)
           VALUES ($1, $2, NULL, now())
           ON CONFLICT DO NOTHING
           RETURNING idempotency_key`,
          [idempotencyKey, orderId],
        );
        if (marked.length > 0) return { kind: 'voided' };
        const [existing] = await tx.query<{
          order_id: string;
          fingerprint: string | null;
          payment_id: string | null;
          expired: boolean;
        }>(
          `UPDATE charge_requests SET voided_at = COALESCE(voided_at, now())
           WHERE idempotency_key = $1 AND order_id = $2
           RETURNING order_id, fingerprint, payment_id, (claimed_until IS NULL OR claimed_until <= now()) AS expired`,
          [idempotencyKey, orderId],
        );
        if (!existing) {
          return {
            kind: 'conflict',
            message: `charge key ${idempotencyKey} does not belong to order ${orderId}, or the order is charged under another key`,
          };
        }
        if (existing.payment_id) {
          const [row] = await tx.query<PaymentRow>('SELECT * FROM payments WHERE id = $1', [
            existing.payment_id,
          ]);
          return { kind: 'done', payment: toRecord(row!) };
        }
        if (existing.fingerprint === null) return { kind: 'voided' };
        // A lapsed claim is a charger that died before storing its outcome: the void makes any
        // retry of it refused. What the processor did under the key then is for reconciliation,
        // as with a charge that ends FAILED after timeouts (createPaymentProcessing).
        return existing.expired ? { kind: 'voided' } : { kind: 'running' };
      });
    },

    /** Gives the key up after an unexpected error, so the caller's retry need not wait out the lease. */
    async releaseCharge(idempotencyKey: string): Promise<void> {
      await db.query(
        'UPDATE charge_requests SET claimed_until = now() WHERE idempotency_key = $1 AND payment_id IS NULL',
        [idempotencyKey],
      );
    },

    /** Binds a refund key to its payment; false when the key already names another payment. */
    claimRefund({ idempotencyKey, paymentId }: { idempotencyKey: string; paymentId: string }) {
      return db.transaction(async (tx) => {
        await tx.query(
          'INSERT INTO refund_requests (idempotency_key, payment_id) VALUES ($1, $2) ON CONFLICT DO NOTHING',
          [idempotencyKey, paymentId],
        );
        const [row] = await tx.query<{ payment_id: string }>(
          'SELECT payment_id FROM refund_requests WHERE idempotency_key = $1',
          [idempotencyKey],
        );
        return row?.payment_id === paymentId;
      });
    },

    /** CAPTURED → REFUNDED in full; a payment in any other state is returned as it is. */
    async markRefunded(paymentId: string): Promise<PaymentRecord> {
      const [updated] = await db.query<PaymentRow>(
        `UPDATE payments SET status = 'REFUNDED', refunded_cents = amount_cents, updated_at = now()
         WHERE id = $1 AND status = 'CAPTURED' RETURNING *`,
        [paymentId],
      );
      const row =
        updated ?? (await db.query<PaymentRow>('SELECT * FROM payments WHERE id = $1', [paymentId]))[0]!;
      return toRecord(row);
    },
  };
}
export type PaymentStore = ReturnType<typeof createPaymentStore>;
