import { randomUUID } from 'node:crypto';
import { isUniqueViolation, type Database } from '../../../lib/db/createDatabase.ts';
import { isUuid } from '../../../lib/ids.ts';

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
  const findBy = async (column: 'id' | 'order_id', ids: readonly string[]) => {
    const valid = ids.filter(isUuid);
    const rows = valid.length
      ? await db.query<PaymentRow>(`SELECT * FROM payments WHERE ${column} = ANY($1::uuid[])`, [valid])
      : [];
    const byKey = new Map(rows.map((row) => [column === 'id' ? row.id : row.order_id, toRecord(row)]));
    return ids.map((id) => byKey.get(id.toLowerCase()) ?? null);
  };

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
    findByIds: (ids: readonly string[]) => findBy('id', ids),
    findByOrderIds: (orderIds: readonly string[]) => findBy('order_id', orderIds),
  };
}
export type PaymentStore = ReturnType<typeof createPaymentStore>;
