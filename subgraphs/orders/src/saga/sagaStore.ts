import { randomUUID } from 'node:crypto';
import type { Database } from '../../../../lib/db/createDatabase.ts';
import { insertOutboxRows, outboxParams, toOutboxRow } from '../../../../lib/outbox/appendEvent.ts';
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
  /** The version of the order's last event (envelopes count per order): the next is this + 1. */
  eventVersion: number;
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
  event_version: number;
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

/** The states in which a saga has ended: it holds no lease any more. */
const ENDED: readonly SagaState[] = ['COMPLETED', 'COMPENSATED', 'FAILED'];

interface ClaimedRow extends SagaOrderRow {
  items: OrderItemRecord[];
  steps: SagaStepState[];
}

/**
 * The orders schema's saga: the order placed with its steps and OrderPlaced, the lease, and each
 * transition. A running saga is held in memory by the replica that holds its lease (issue #7):
 * each transition is one statement that writes only what changed (its steps, the order, its
 * events) and is fenced by the lease, so a replica that lost the saga writes nothing.
 */
export function createSagaStore(db: Database, { owner, leaseMs }: SagaLease) {
  function toSagaOrder(row: ClaimedRow): SagaOrder {
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
      eventVersion: row.event_version,
      items: row.items,
      steps: row.steps,
    };
  }

  /** The outbox row of one of the order's events, as the order stands once it happened. */
  function eventRow(order: SagaOrder, version: number, type: OrderEventType, extra: Partial<OrderEventData>) {
    return toOutboxRow<OrderEventData>({
      topic: ORDER_EVENTS_TOPIC,
      eventType: type,
      aggregateId: order.id,
      version,
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

  /**
   * The order, its items, its PENDING steps and OrderPlaced, in one statement (so atomically),
   * born leased to this replica, which runs it next. Returns the saga as it now stands.
   */
  async function record(input: NewPlacedOrder): Promise<SagaOrder> {
    const id = randomUUID();
    const totalCents = input.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
    const items = input.items.map((item) => ({ ...item, productId: item.productId.toLowerCase() }));
    const order: SagaOrder = {
      id,
      userId: input.userId,
      status: 'PENDING',
      createdAt: new Date(0), // the database's clock says, below
      totalCents,
      sagaState: 'RUNNING',
      failureReason: null,
      paymentToken: input.paymentToken,
      userEmail: null,
      reservationId: null,
      paymentId: null,
      eventVersion: 1,
      items,
      steps: SAGA_STEPS.map((name) => ({ name, status: 'PENDING', attempts: 0, elapsedMs: null })),
    };
    // OrderPlaced carries the order's creation time, which only the insert knows: the
    // statement splices it into the envelope, formatted as Date#toISOString would.
    const event = eventRow(order, 1, 'OrderPlaced', {});
    const placed = JSON.stringify(event.envelope.data.placedAt);
    const at = event.envelopeJson.indexOf(placed);
    const [before, after] = [event.envelopeJson.slice(0, at), event.envelopeJson.slice(at + placed.length)];
    // Not JSON-escaped to something else, and nowhere else in the envelope: the only field it could be.
    if (at < 0 || after.includes(placed)) throw new Error('OrderPlaced envelope without one placedAt slot');
    const [row] = await db.query<{ created_at: Date }>(
      `WITH placed AS (
         INSERT INTO orders (id, user_id, status, total_cents, saga_state, idempotency_key,
                             request_fingerprint, payment_token, saga_owner, saga_lease_until, event_version)
         VALUES ($1, $2, 'PENDING', $3, 'RUNNING', $4, $5, $6, $7,
                 now() + $8::integer * interval '1 millisecond', 1)
         RETURNING id, created_at
       ), items AS (
         INSERT INTO order_items (order_id, position, product_id, quantity, unit_price_cents)
         SELECT placed.id, i.position - 1, i.product_id, i.quantity, i.unit_price_cents
         FROM placed, unnest($9::uuid[], $10::integer[], $11::integer[]) WITH ORDINALITY
           AS i (product_id, quantity, unit_price_cents, position)
       ), steps AS (
         INSERT INTO saga_steps (order_id, position, name, status)
         SELECT placed.id, s.position - 1, s.name, 'PENDING'
         FROM placed, unnest($12::text[]) WITH ORDINALITY AS s (name, position)
       ), event AS (
         INSERT INTO outbox (event_id, topic, aggregate_id, event_type, envelope, headers)
         SELECT $13, $14, $15, $16,
                ($17 || to_json(to_char(placed.created_at AT TIME ZONE 'UTC',
                                        'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))::text || $18)::json,
                $19::jsonb
         FROM placed
       )
       SELECT created_at FROM placed`,
      [
        id,
        input.userId,
        totalCents,
        input.idempotencyKey,
        input.fingerprint,
        input.paymentToken,
        owner,
        leaseMs,
        items.map((item) => item.productId),
        items.map((item) => item.quantity),
        items.map((item) => item.unitPriceCents),
        [...SAGA_STEPS],
        event.envelope.eventId,
        event.topic,
        id,
        event.envelope.eventType,
        before,
        after,
        event.headersJson,
      ],
    );
    return { ...order, createdAt: new Date(row!.created_at) };
  }

  return {
    record,

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

    /**
     * Takes (or renews) the saga's lease and reads it, in one statement; null while another
     * replica holds it, or once it has ended.
     */
    async claim(orderId: string): Promise<SagaOrder | null> {
      const [row] = await db.query<ClaimedRow>(
        `WITH claimed AS (
           UPDATE orders SET saga_owner = $3, saga_lease_until = ${LEASE_UNTIL}
           WHERE id = $1 AND saga_state IN ('RUNNING', 'COMPENSATING')
             AND (saga_lease_until IS NULL OR saga_lease_until < now() OR saga_owner = $3)
           RETURNING *
         )
         SELECT claimed.*,
           (SELECT COALESCE(json_agg(json_build_object(
                     'productId', i.product_id, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents)
                   ORDER BY i.position), '[]')
            FROM order_items i WHERE i.order_id = claimed.id) AS items,
           (SELECT COALESCE(json_agg(json_build_object(
                     'name', s.name, 'status', s.status, 'attempts', s.attempts,
                     'elapsedMs', (EXTRACT(EPOCH FROM now() - s.started_at) * 1000)::float8)
                   ORDER BY s.position), '[]')
            FROM saga_steps s WHERE s.order_id = claimed.id) AS steps
         FROM claimed`,
        [orderId, leaseMs, owner],
      );
      return row ? toSagaOrder(row) : null;
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
     * Applies one transition to the saga `order` (as this replica holds it: claimed or recorded
     * here, then each transition's result) and returns it as it now stands. One statement: the
     * order's row (its changes, the lease renewed, or given up when the saga ends), the steps
     * that changed, the compensation steps added and the events, all or nothing. It is fenced:
     * it writes nothing unless this replica still holds the lease and the order is at the event
     * version this replica last wrote, and then throws SagaLeaseLostError.
     */
    async apply(order: SagaOrder, transition: Transition): Promise<SagaOrder> {
      const change = transition.order ?? {};
      const sagaState = change.sagaState ?? order.sagaState;
      const next: SagaOrder = {
        ...order,
        status: change.status ?? order.status,
        sagaState,
        failureReason: change.failureReason ?? order.failureReason,
        userEmail: change.userEmail ?? order.userEmail,
        reservationId: change.reservationId ?? order.reservationId,
        paymentId: change.paymentId ?? order.paymentId,
      };
      const added = [...new Set(transition.compensations ?? [])].filter(
        (name) => !order.steps.some((step) => step.name === name),
      );
      const stepChanges = transition.steps ?? [];
      // A step inserted by this statement is not there yet for its UPDATE (one snapshot).
      if (stepChanges.some((step) => (added as StepName[]).includes(step.name))) {
        throw new Error('a compensation step cannot change in the transition that adds it');
      }
      const events = (transition.events ?? []).map((event, index) =>
        eventRow(next, order.eventVersion + index + 1, event.type, event.extra ?? {}),
      );
      const ends = ENDED.includes(sagaState);
      const rows = await db.query<{ name: StepName | null; attempts: number; elapsed_ms: number | null }>(
        `WITH held AS (
           UPDATE orders SET
             status = $4, saga_state = $5, failure_reason = $6, user_email = $7,
             reservation_id = $8::uuid, payment_id = $9::uuid,
             event_version = $10::integer,
             saga_owner = CASE WHEN $11::boolean THEN NULL ELSE saga_owner END,
             saga_lease_until = CASE WHEN $11::boolean THEN NULL ELSE ${LEASE_UNTIL} END,
             updated_at = now()
           WHERE id = $1 AND saga_owner = $3 AND event_version = $12::integer
           RETURNING id
         ), added AS (
           INSERT INTO saga_steps (order_id, position, name, status)
           -- After the last position, whatever gaps an older log may have.
           SELECT held.id,
                  GREATEST($13::integer, (SELECT COALESCE(max(s.position), -1) + 1
                                          FROM saga_steps s WHERE s.order_id = held.id)) + a.position - 1,
                  a.name, 'PENDING'
           FROM held, unnest($14::text[]) WITH ORDINALITY AS a (name, position)
         ), changed AS (
           UPDATE saga_steps s SET
             status = c.status,
             attempts = s.attempts + CASE WHEN c.attempt THEN 1 ELSE 0 END,
             -- The last error stays visible while the step is retried; it goes once the step is done.
             error = CASE WHEN c.status IN ('SUCCEEDED', 'SKIPPED') THEN NULL ELSE COALESCE(c.error, s.error) END,
             started_at = CASE WHEN c.attempt THEN COALESCE(s.started_at, now()) ELSE s.started_at END,
             finished_at = CASE WHEN c.status IN ('RUNNING', 'PENDING', 'SKIPPED') THEN NULL ELSE now() END
           FROM held, unnest($15::text[], $16::text[], $17::text[], $18::boolean[]) AS c (name, status, error, attempt)
           WHERE s.order_id = held.id AND s.name = c.name
           RETURNING s.name, s.attempts, (EXTRACT(EPOCH FROM now() - s.started_at) * 1000)::float8 AS elapsed_ms
         ), events AS (
           ${insertOutboxRows(19, 'EXISTS (SELECT 1 FROM held)')}
         )
         SELECT NULL AS name, 0 AS attempts, NULL::float8 AS elapsed_ms FROM held
         UNION ALL
         SELECT name, attempts, elapsed_ms FROM changed`,
        [
          order.id,
          leaseMs,
          owner,
          next.status,
          next.sagaState,
          next.failureReason,
          next.userEmail,
          next.reservationId,
          next.paymentId,
          order.eventVersion + events.length,
          ends,
          order.eventVersion,
          order.steps.length,
          added,
          stepChanges.map((step) => step.name),
          stepChanges.map((step) => step.status),
          stepChanges.map((step) => step.error ?? null),
          stepChanges.map((step) => step.status === 'RUNNING' && step.attempt === true),
          ...outboxParams(events),
        ],
      );
      if (!rows.some((row) => row.name === null)) throw new SagaLeaseLostError(order.id);
      const written = new Map(rows.filter((row) => row.name !== null).map((row) => [row.name, row]));
      const statusOf = new Map(stepChanges.map((step) => [step.name, step.status]));
      return {
        ...next,
        eventVersion: order.eventVersion + events.length,
        steps: [
          ...order.steps.map((step) => {
            const row = written.get(step.name);
            return row
              ? {
                  name: step.name,
                  status: statusOf.get(step.name)!,
                  attempts: row.attempts,
                  elapsedMs: row.elapsed_ms,
                }
              : step;
          }),
          ...added.map((name) => ({ name, status: 'PENDING' as const, attempts: 0, elapsedMs: null })),
        ],
      };
    },
  };
}
export type SagaStore = ReturnType<typeof createSagaStore>;
