import { randomUUID } from 'node:crypto';
import { isUniqueViolation, type Database } from '../../../lib/db/createDatabase.ts';
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
  createdAt: row.created_at,
});

export class DuplicatePaymentError extends Error {}

export function createPaymentStore(db: Database) {
  return {
    async create(input: Omit<PaymentRecord, 'id' | 'createdAt'> & { id?: string }): Promise<PaymentRecord> {
      try {
        const [row] = await db.query<PaymentRow>(
          `INSERT INTO payments (id, order_id, user_id, amount_cents, status, attempts, refunded_cents)
           VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *`,
          [
            input.id ?? randomUUID(),
            input.orderId,
            input.userId,
            input.amountCents,
            input.status,
            input.attempts,
            input.refundedCents,
          ],
        );
        return toRecord(row!);
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
  };
}
export type PaymentStore = ReturnType<typeof createPaymentStore>;
