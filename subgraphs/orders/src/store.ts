import { randomUUID } from 'node:crypto';
import type { Database } from '../../../lib/db/createDatabase.ts';
import { findByUuids } from '../../../lib/db/findByUuids.ts';
import { isUuid } from '../../../lib/ids.ts';

export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';
export type SagaState = 'RUNNING' | 'COMPLETED' | 'COMPENSATING' | 'COMPENSATED' | 'FAILED';
export type StepStatus = 'PENDING' | 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'COMPENSATED' | 'SKIPPED';

export interface OrderRecord {
  id: string;
  seq: number;
  userId: string;
  status: OrderStatus;
  failureReason: string | null;
  totalCents: number;
  sagaState: SagaState;
  createdAt: Date;
  updatedAt: Date;
}

export interface OrderItemRecord {
  productId: string;
  quantity: number;
  unitPriceCents: number;
}

export interface SagaStepRecord {
  name: string;
  status: StepStatus;
  attempts: number;
  error: string | null;
  startedAt: Date | null;
  finishedAt: Date | null;
}

interface OrderRow {
  id: string;
  seq: string | number;
  user_id: string;
  status: OrderStatus;
  failure_reason: string | null;
  total_cents: number;
  saga_state: SagaState;
  created_at: Date;
  updated_at: Date;
}

const toOrder = (row: OrderRow): OrderRecord => ({
  id: row.id,
  seq: Number(row.seq),
  userId: row.user_id,
  status: row.status,
  failureReason: row.failure_reason,
  totalCents: row.total_cents,
  sagaState: row.saga_state,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** Groups rows by order id, in the order the batch asked for them (DataLoader's contract). */
function groupByOrder<R extends { order_id: string }, T>(
  ids: readonly string[],
  rows: R[],
  map: (row: R) => T,
): T[][] {
  const grouped = new Map<string, T[]>();
  for (const row of rows) {
    const list = grouped.get(row.order_id) ?? [];
    list.push(map(row));
    grouped.set(row.order_id, list);
  }
  return ids.map((id) => grouped.get(id.toLowerCase()) ?? []);
}

export interface NewOrder {
  id?: string;
  userId: string;
  status: OrderStatus;
  failureReason?: string | null;
  sagaState: SagaState;
  items: readonly OrderItemRecord[];
  steps: readonly SagaStepRecord[];
}

export function createOrderStore(db: Database) {
  return {
    /** The order, its items and its step log in one transaction: all of it or none. */
    async create(input: NewOrder): Promise<OrderRecord> {
      const totalCents = input.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
      return db.transaction(async (tx) => {
        const [row] = await tx.query<OrderRow>(
          `INSERT INTO orders (id, user_id, status, failure_reason, total_cents, saga_state)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
          [
            input.id ?? randomUUID(),
            input.userId,
            input.status,
            input.failureReason ?? null,
            totalCents,
            input.sagaState,
          ],
        );
        const order = toOrder(row!);
        for (const [position, item] of input.items.entries()) {
          await tx.query(
            `INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)`,
            [order.id, position, item.productId, item.quantity, item.unitPriceCents],
          );
        }
        for (const [position, step] of input.steps.entries()) {
          await tx.query(
            `INSERT INTO saga_steps (order_id, position, name, status, attempts, error, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
            [
              order.id,
              position,
              step.name,
              step.status,
              step.attempts,
              step.error,
              step.startedAt,
              step.finishedAt,
            ],
          );
        }
        return order;
      });
    },

    findByIds: (ids: readonly string[]) =>
      findByUuids(
        db,
        'SELECT * FROM orders WHERE id = ANY($1::uuid[])',
        ids,
        (row: OrderRow) => row.id,
        toOrder,
      ),

    async itemsOf(orderIds: readonly string[]): Promise<OrderItemRecord[][]> {
      const rows = await db.query<{
        order_id: string;
        product_id: string;
        quantity: number;
        unit_price_cents: number;
      }>('SELECT * FROM order_items WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position', [
        orderIds.filter(isUuid),
      ]);
      return groupByOrder(orderIds, rows, (row) => ({
        productId: row.product_id,
        quantity: row.quantity,
        unitPriceCents: row.unit_price_cents,
      }));
    },

    async stepsOf(orderIds: readonly string[]): Promise<SagaStepRecord[][]> {
      const rows = await db.query<{
        order_id: string;
        name: string;
        status: StepStatus;
        attempts: number;
        error: string | null;
        started_at: Date | null;
        finished_at: Date | null;
      }>('SELECT * FROM saga_steps WHERE order_id = ANY($1::uuid[]) ORDER BY order_id, position', [
        orderIds.filter(isUuid),
      ]);
      return groupByOrder(orderIds, rows, (row) => ({
        name: row.name,
        status: row.status,
        attempts: row.attempts,
        error: row.error,
        startedAt: row.started_at,
        finishedAt: row.finished_at,
      }));
    },

    /** Newest first: keyset page of a user's orders created before `beforeSeq`. */
    async pageForUser({
      userId,
      beforeSeq,
      limit,
    }: {
      userId: string;
      beforeSeq: number | null;
      limit: number;
    }) {
      if (!isUuid(userId)) return [];
      const rows = await db.query<OrderRow>(
        `SELECT * FROM orders WHERE user_id = $1 AND ($2::bigint IS NULL OR seq < $2)
         ORDER BY seq DESC LIMIT $3`,
        [userId, beforeSeq, limit],
      );
      return rows.map(toOrder);
    },

    async exists(id: string): Promise<boolean> {
      return (await db.query('SELECT 1 FROM orders WHERE id = $1', [id])).length > 0;
    },
  };
}
export type OrderStore = ReturnType<typeof createOrderStore>;
