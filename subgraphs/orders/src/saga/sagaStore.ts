import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '../../../../lib/db/createDatabase.ts';
import { appendEvent } from '../../../../lib/outbox/appendEvent.ts';
import type { OrderItemRecord, OrderRecord, SagaState, StepStatus } from '../store.ts';

export const ORDER_EVENTS_TOPIC = 'order-events';

/**
 * The `order-events` that change an order's status, and the status each leaves it in: part of
 * the event contract, read by every consumer that follows order statuses (orders' own
 * subscriptions, analytics).
 */
export const ORDER_STATUS_AFTER_EVENT: Readonly<Record<string, 'PENDING' | 'CONFIRMED' | 'CANCELLED'>> = {
  OrderPlaced: 'PENDING',
  OrderConfirmed: 'CONFIRMED',
  OrderCancelled: 'CANCELLED',
};

export const SAGA_STEPS = ['VALIDATE_USER', 'RESERVE_STOCK', 'CHARGE_PAYMENT', 'CONFIRM_ORDER'] as const;
export type SagaStepName = (typeof SAGA_STEPS)[number];

/**
 * The steps that undo a forward step, logged like any step (attempts, error, times) once the saga
 * compensates: REFUND_PAYMENT undoes CHARGE_PAYMENT, RELEASE_STOCK undoes RESERVE_STOCK, run in
 * that order. They are added to the log only when needed, so a confirmed order shows none.
 */
export const COMPENSATION_OF = { CHARGE_PAYMENT: 'REFUND_PAYMENT', RESERVE_STOCK: 'RELEASE_STOCK' } as const;
export type CompensatedStepName = keyof typeof COMPENSATION_OF;
export type CompensationStepName = (typeof COMPENSATION_OF)[CompensatedStepName];
export type StepName = SagaStepName | CompensationStepName;
export const isCompensationStep = (name: StepName): name is CompensationStepName =>
  name === 'REFUND_PAYMENT' || name === 'RELEASE_STOCK';

export type OrderEventType =
  | 'OrderPlaced'
  | 'StockReserved'
  | 'PaymentCaptured'
  | 'PaymentFailed'
  | 'PaymentRefunded'
  | 'StockReleased'
  | 'OrderConfirmed'
  | 'OrderCancelled';

/** What every order event carries (analytics and notifications read it), plus its own fields. */
export interface OrderEventData {
  orderId: string;
  userId: string;
  email: string | null;
  items: OrderItemRecord[];
  totalCents: number;
  /** The order's status once this event happened (analytics and subscriptions read it). */
  status: OrderRecord['status'];
  /** When the order was placed (ISO-8601), on every event so a consumer never needs OrderPlaced first. */
  placedAt: string;
  reason?: string;
  paymentId?: string;
  reservationId?: string;
}

/** Everything the saga needs to run or resume an order. */
export interface SagaOrder {
  id: string;
  userId: string;
  status: OrderRecord['status'];
  createdAt: Date;
  totalCents: number;
  sagaState: SagaState;
  failureReason: string | null;
  paymentToken: string;
  userEmail: string | null;
  reservationId: string | null;
  paymentId: string | null;
  items: OrderItemRecord[];
  /** In log order: the forward steps, then the compensation steps added when it compensates. */
  steps: SagaStepState[];
}

export interface SagaStepState {
  name: StepName;
  status: StepStatus;
  attempts: number;
  /** Since the step's first attempt, by the database's clock (null before it started). */
  elapsedMs: number | null;
}

interface SagaOrderRow {
  id: string;
  user_id: string;
  status: OrderRecord['status'];
  created_at: Date;
  total_cents: number;
  saga_state: SagaState;
  failure_reason: string | null;
  payment_token: string | null;
  user_email: string | null;
  reservation_id: string | null;
  payment_id: string | null;
}

export interface NewPlacedOrder {
  userId: string;
  items: readonly OrderItemRecord[];
  paymentToken: string;
  idempotencyKey: string | null;
  fingerprint: string;
}

/** A change of one step: its status, and the timestamps and attempt count that go with it. */
export interface StepChange {
  name: StepName;
  status: StepStatus;
  /** Why it FAILED, or (RUNNING) why its last attempt failed and it is about to be tried again. */
  error?: string | null;
  /**
   * RUNNING only: a new attempt starts (counted; startedAt is the first attempt's). Without it a
   * RUNNING change only records `error` on the attempt that just failed.
   */
  attempt?: boolean;
}

/** One transition of the saga: step changes, order changes and events, all in one transaction. */
export interface Transition {
  steps?: StepChange[];
  /** Compensation steps to add to the log (PENDING, after the others), each at most once. */
  compensations?: CompensationStepName[];
  order?: {
    status?: OrderRecord['status'];
    sagaState?: SagaState;
    failureReason?: string;
    userEmail?: string;
    reservationId?: string;
    paymentId?: string;
  };
  events?: { type: OrderEventType; extra?: Partial<OrderEventData> }[];
}

/** This replica's hold on the sagas it runs (see migrations/003_saga_lease.sql). */
export interface SagaLease {
  /** Unique per running instance: a restarted process is a new owner. */
  owner: string;
  leaseMs: number;
}

/** The saga's lease went to another replica (this one stalled past it): it must stop at once. */
export class SagaLeaseLostError extends Error {
  constructor(orderId: string) {
    super(`saga ${orderId} is now run by another replica`);
    this.name = 'SagaLeaseLostError';
  }
}

const LEASE_UNTIL = `now() + $2::integer * interval '1 millisecond'`;

export function createSagaStore(db: Database, { owner, leaseMs }: SagaLease) {
  async function load(q: Queryable, orderId: string): Promise<SagaOrder | null> {
    const [row] = await q.query<SagaOrderRow>('SELECT * FROM orders WHERE id = $1', [orderId]);
    if (!row) return null;
    const items = await q.query<{ product_id: string; quantity: number; unit_price_cents: number }>(
      'SELECT * FROM order_items WHERE order_id = $1 ORDER BY position',
      [orderId],
    );
    const steps = await q.query<{
      name: StepName;
      status: StepStatus;
      attempts: number;
      elapsed_ms: number | null;
    }>(
      `SELECT name, status, attempts,
              (EXTRACT(EPOCH FROM now() - started_at) * 1000)::float8 AS elapsed_ms
       FROM saga_steps WHERE order_id = $1 ORDER BY position`,
      [orderId],
    );
    return {
      id: row.id,
      userId: row.user_id,
      status: row.status,
      createdAt: new Date(row.created_at),
      totalCents: row.total_cents,
      sagaState: row.saga_state,
      failureReason: row.failure_reason,
      paymentToken: row.payment_token ?? '',
      userEmail: row.user_email,
      reservationId: row.reservation_id,
      paymentId: row.payment_id,
      items: items.map((item) => ({
        productId: item.product_id,
        quantity: item.quantity,
        unitPriceCents: item.unit_price_cents,
      })),
      steps: steps.map((step) => ({
        name: step.name,
        status: step.status,
        attempts: step.attempts,
        elapsedMs: step.elapsed_ms,
      })),
    };
  }

  async function emit(
    tx: Queryable,
    order: SagaOrder,
    type: OrderEventType,
    extra: Partial<OrderEventData> = {},
  ) {
    const [row] = await tx.query<{ event_version: number }>(
      'UPDATE orders SET event_version = event_version + 1 WHERE id = $1 RETURNING event_version',
      [order.id],
    );
    await appendEvent<OrderEventData>(tx, {
      topic: ORDER_EVENTS_TOPIC,
      eventType: type,
      aggregateId: order.id,
      version: row!.event_version,
      data: {
        orderId: order.id,
        userId: order.userId,
        email: order.userEmail,
        items: order.items,
        totalCents: order.totalCents,
        status: order.status,
        placedAt: order.createdAt.toISOString(),
        ...extra,
      },
    });
  }

  return {
    load: (orderId: string) => load(db, orderId),

    /** The order, its items, its PENDING steps and OrderPlaced, in one transaction. */
    async place(input: NewPlacedOrder): Promise<string> {
      const id = randomUUID();
      const totalCents = input.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
      await db.transaction(async (tx) => {
        // Born leased to this replica, which runs it next: no other replica's sweep can take it.
        await tx.query(
          `INSERT INTO orders (id, user_id, status, total_cents, saga_state, idempotency_key,
                               request_fingerprint, payment_token, saga_owner, saga_lease_until)
           VALUES ($1, $2, 'PENDING', $3, 'RUNNING', $4, $5, $6, $7,
                   now() + $8::integer * interval '1 millisecond')`,
          [
            id,
            input.userId,
            totalCents,
            input.idempotencyKey,
            input.fingerprint,
            input.paymentToken,
            owner,
            leaseMs,
          ],
        );
        for (const [position, item] of input.items.entries()) {
          await tx.query(
            `INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)`,
            [id, position, item.productId, item.quantity, item.unitPriceCents],
          );
        }
        for (const [position, name] of SAGA_STEPS.entries()) {
          await tx.query(
            `INSERT INTO saga_steps (order_id, position, name, status) VALUES ($1, $2, $3, 'PENDING')`,
            [id, position, name],
          );
        }
        const order = await load(tx, id);
        await emit(tx, order!, 'OrderPlaced');
      });
      return id;
    },

    /** The order a user placed with an idempotency key, and the fingerprint of that request. */
    async findByIdempotencyKey(userId: string, key: string) {
      const [row] = await db.query<{ id: string; request_fingerprint: string | null }>(
        'SELECT id, request_fingerprint FROM orders WHERE user_id = $1 AND idempotency_key = $2',
        [userId, key],
      );
      return row ? { id: row.id, fingerprint: row.request_fingerprint } : null;
    },

    /** In-flight sagas no live replica holds: never leased, released, or whose lease lapsed. */
    async unowned(): Promise<string[]> {
      const rows = await db.query<{ id: string }>(
        `SELECT id FROM orders
         WHERE saga_state IN ('RUNNING', 'COMPENSATING')
           AND (saga_lease_until IS NULL OR saga_lease_until < now() OR saga_owner = $1)
         ORDER BY seq`,
        [owner],
      );
      return rows.map((row) => row.id);
    },

    /** Takes (or renews) the saga's lease; false while another replica holds it. */
    async claim(orderId: string): Promise<boolean> {
      const rows = await db.query(
        `UPDATE orders SET saga_owner = $3, saga_lease_until = ${LEASE_UNTIL}
         WHERE id = $1 AND saga_state IN ('RUNNING', 'COMPENSATING')
           AND (saga_lease_until IS NULL OR saga_lease_until < now() OR saga_owner = $3)
         RETURNING id`,
        [orderId, leaseMs, owner],
      );
      return rows.length > 0;
    },

    /** Extends the leases this replica still holds among `orderIds`; returns those renewed. */
    async renew(orderIds: readonly string[]): Promise<string[]> {
      if (orderIds.length === 0) return [];
      const rows = await db.query<{ id: string }>(
        `UPDATE orders SET saga_lease_until = ${LEASE_UNTIL}
         WHERE id = ANY($1::uuid[]) AND saga_owner = $3
         RETURNING id`,
        [orderIds, leaseMs, owner],
      );
      return rows.map((row) => row.id);
    },

    /** Gives the lease up (the saga ended, or this replica stops): another may take it at once. */
    async release(orderId: string): Promise<void> {
      await db.query(
        `UPDATE orders SET saga_owner = NULL, saga_lease_until = NULL WHERE id = $1 AND saga_owner = $2`,
        [orderId, owner],
      );
    },

    /**
     * Applies one transition atomically and returns the order as it now stands. Only under this
     * replica's lease, which it renews: a replica that lost it records nothing.
     */
    async apply(orderId: string, transition: Transition): Promise<SagaOrder> {
      return db.transaction(async (tx) => {
        const held = await tx.query(
          `UPDATE orders SET saga_lease_until = ${LEASE_UNTIL} WHERE id = $1 AND saga_owner = $3 RETURNING id`,
          [orderId, leaseMs, owner],
        );
        if (held.length === 0) throw new SagaLeaseLostError(orderId);
        for (const name of transition.compensations ?? []) {
          await tx.query(
            `INSERT INTO saga_steps (order_id, position, name, status)
             SELECT $1, COALESCE(max(position), -1) + 1, $2::text, 'PENDING' FROM saga_steps WHERE order_id = $1
             HAVING NOT COALESCE(bool_or(name = $2::text), false)`,
            [orderId, name],
          );
        }
        for (const step of transition.steps ?? []) {
          const attempt = step.status === 'RUNNING' && step.attempt === true;
          // The last error stays visible while the step is retried; it goes once the step is done.
          await tx.query(
            `UPDATE saga_steps SET
               status = $3,
               attempts = attempts + CASE WHEN $5::boolean THEN 1 ELSE 0 END,
               error = CASE WHEN $3 IN ('SUCCEEDED', 'SKIPPED') THEN NULL ELSE COALESCE($4, error) END,
               started_at = CASE WHEN $5::boolean THEN COALESCE(started_at, now()) ELSE started_at END,
               finished_at = CASE WHEN $3 IN ('RUNNING', 'PENDING', 'SKIPPED') THEN NULL ELSE now() END
             WHERE order_id = $1 AND name = $2`,
            [orderId, step.name, step.status, step.error ?? null, attempt],
          );
        }
        const change = transition.order ?? {};
        await tx.query(
          `UPDATE orders SET
             status = COALESCE($2, status),
             saga_state = COALESCE($3, saga_state),
             failure_reason = COALESCE($4, failure_reason),
             user_email = COALESCE($5, user_email),
             reservation_id = COALESCE($6, reservation_id),
             payment_id = COALESCE($7, payment_id),
             updated_at = now()
           WHERE id = $1`,
          [
            orderId,
            change.status ?? null,
            change.sagaState ?? null,
            change.failureReason ?? null,
            change.userEmail ?? null,
            change.reservationId ?? null,
            change.paymentId ?? null,
          ],
        );
        const order = (await load(tx, orderId))!;
        for (const event of transition.events ?? []) await emit(tx, order, event.type, event.extra);
        return order;
      });
    },
  };
}
export type SagaStore = ReturnType<typeof createSagaStore>;
