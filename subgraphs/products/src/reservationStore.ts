import { randomUUID } from 'node:crypto';
import type { Database, Queryable } from '../../../lib/db/createDatabase.ts';
import { isUuid } from '../../../lib/ids.ts';

export const ReservationStatus = {
  HELD: 'HELD',
  COMMITTED: 'COMMITTED',
  RELEASED: 'RELEASED',
  EXPIRED: 'EXPIRED',
  REJECTED: 'REJECTED',
} as const;
export type ReservationStatus = (typeof ReservationStatus)[keyof typeof ReservationStatus];

export interface ReservationItemRecord {
  productId: string;
  quantity: number;
  unitPriceCents: number;
}

export interface ReservationRecord {
  id: string;
  idempotencyKey: string;
  orderId: string | null;
  status: ReservationStatus;
  reason: string | null;
  expiresAt: Date;
  createdAt: Date;
  updatedAt: Date;
  items: ReservationItemRecord[];
}

export interface ReserveRequest {
  idempotencyKey: string;
  orderId: string;
  /** One entry per product (the caller merges duplicates), quantity >= 1. */
  items: { productId: string; quantity: number }[];
  ttlMs: number;
}

/** The same idempotency key was used for a different reservation. */
export class ReservationConflictError extends Error {}
/** A product id that names no product. */
export class UnknownProductError extends Error {
  constructor(readonly productId: string) {
    super(`unknown product ${productId}`);
  }
}
export class UnknownReservationError extends Error {}
/** The reservation is in a state the operation cannot move it from (commit after expiry). */
export class ReservationNotHeldError extends Error {
  constructor(readonly reservation: ReservationRecord) {
    super(`reservation ${reservation.id} is ${reservation.status}, not HELD`);
  }
}

interface ReservationRow {
  id: string;
  idempotency_key: string;
  order_id: string | null;
  status: ReservationStatus;
  reason: string | null;
  expires_at: Date;
  created_at: Date;
  updated_at: Date;
}
/** A reservation's row with its items, as JSON: how the one-statement operations answer. */
type ReservationJson = ReservationRow & { items: ReservationItemRecord[] };
interface LockedProductRow {
  id: string;
  sku: string;
  price_cents: number;
  available: number;
}

const toRecord = (row: ReservationRow, items: ReservationItemRecord[]): ReservationRecord => ({
  id: row.id,
  idempotencyKey: row.idempotency_key,
  orderId: row.order_id,
  status: row.status,
  reason: row.reason,
  // Dates whether the row came as columns or as JSON.
  expiresAt: new Date(row.expires_at),
  createdAt: new Date(row.created_at),
  updatedAt: new Date(row.updated_at),
  items: [...items].sort((a, b) => a.productId.localeCompare(b.productId)),
});

const fromJson = (row: ReservationJson) => toRecord(row, row.items);

/** A reservation's items as a JSON array, for the statements that answer with them. */
const ITEMS_OF = (reservation: string) => `(SELECT COALESCE(json_agg(json_build_object(
     'productId', i.product_id, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents)), '[]')
   FROM reservation_items i WHERE i.reservation_id = ${reservation}.id)`;

/** The reservation under `key` with its items, in one statement. */
async function loadByKey(db: Queryable, key: string): Promise<ReservationRecord | null> {
  const [row] = await db.query<ReservationJson>(
    `SELECT r.*, ${ITEMS_OF('r')} AS items FROM reservations r WHERE r.idempotency_key = $1`,
    [key],
  );
  return row ? fromJson(row) : null;
}

/**
 * Every path that changes products.reserved locks the product rows first and in id order, so two
 * transactions touching the same products always queue instead of deadlocking.
 */
async function lockProducts(tx: Queryable, productIds: string[]): Promise<LockedProductRow[]> {
  return tx.query<LockedProductRow>(
    `SELECT id, sku, price_cents, stock - reserved AS available FROM products
     WHERE id = ANY($1::uuid[]) ORDER BY id FOR UPDATE`,
    [productIds],
  );
}

const EXPIRED_REASON = 'not committed before it expired';

/**
 * Ends a HELD reservation, in one statement: the reservation row is locked first, then its
 * products in id order (as every path that changes products.reserved does, so two statements on
 * the same products queue instead of deadlocking), then the units leave `reserved` (COMMITTED
 * also takes them off the stock) and the status is set. `target` says what a HELD reservation
 * becomes: COMMITTED (EXPIRED instead when its deadline has passed, by the database's clock) or
 * RELEASED. Answers with the reservation as it was when locked and, when it was HELD, as it now
 * is. A release by key that finds no reservation records a RELEASED marker under the key
 * instead (see release), and answers with it as `after`.
 */
async function settle(
  db: Queryable,
  ref: { id: string } | { idempotencyKey: string },
  target: typeof ReservationStatus.COMMITTED | typeof ReservationStatus.RELEASED,
): Promise<{ before: ReservationJson | null; after: ReservationJson | null }> {
  const byKey = 'idempotencyKey' in ref;
  // A release by key that finds nothing leaves a RELEASED marker under the key (see release).
  const marker = byKey
    ? `, marker AS (
       INSERT INTO reservations (id, idempotency_key, order_id, status, reason, expires_at)
       SELECT $4, $1, NULL, 'RELEASED', 'released before anything was reserved', now()
       WHERE NOT EXISTS (SELECT 1 FROM target)
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING *
     )`
    : '';
  const settledJson = `(SELECT to_jsonb(s) || jsonb_build_object('items', ${ITEMS_OF('s')}) FROM settled s)`;
  // MATERIALIZED: each locking CTE runs once and whole, and the writes read what it locked.
  const [row] = await db.query<{ before: ReservationJson | null; after: ReservationJson | null }>(
    `WITH target AS MATERIALIZED (
       SELECT r.*, r.expires_at <= now() AS due FROM reservations r
       WHERE r.${byKey ? 'idempotency_key' : 'id'} = $1 FOR UPDATE
     ), next AS (
       SELECT id, CASE WHEN $2::text = 'COMMITTED' AND due THEN 'EXPIRED' ELSE $2::text END AS status
       FROM target WHERE status = 'HELD'
     ), locked AS MATERIALIZED (
       SELECT p.id FROM products p
       WHERE p.id IN (SELECT i.product_id FROM next JOIN reservation_items i ON i.reservation_id = next.id)
       ORDER BY p.id FOR UPDATE OF p
     ), moved AS (
       UPDATE products p
       SET reserved = p.reserved - i.quantity,
           stock = p.stock - CASE WHEN next.status = 'COMMITTED' THEN i.quantity ELSE 0 END,
           updated_at = now()
       FROM next, locked, reservation_items i
       WHERE i.reservation_id = next.id AND i.product_id = locked.id AND p.id = locked.id
     ), settled AS (
       UPDATE reservations r
       SET status = next.status,
           reason = CASE WHEN next.status = 'EXPIRED' THEN $3 ELSE r.reason END,
           updated_at = now()
       FROM next WHERE r.id = next.id
       RETURNING r.*
     )${marker}
     SELECT (SELECT to_jsonb(t) || jsonb_build_object('items', ${ITEMS_OF('t')}) FROM target t) AS before,
            ${
              byKey
                ? `COALESCE(${settledJson},
              (SELECT to_jsonb(m) || jsonb_build_object('items', '[]'::jsonb) FROM marker m))`
                : settledJson
            } AS after`,
    byKey ? [ref.idempotencyKey, target, EXPIRED_REASON, randomUUID()] : [ref.id, target, EXPIRED_REASON],
  );
  return { before: row?.before ?? null, after: row?.after ?? null };
}

const sameItems = (stored: ReservationItemRecord[], asked: ReserveRequest['items']) =>
  stored.length === asked.length &&
  [...asked]
    .sort((a, b) => a.productId.localeCompare(b.productId))
    .every(
      (item, i) =>
        stored[i]?.productId === item.productId.toLowerCase() && stored[i]?.quantity === item.quantity,
    );

/**
 * Stock reservations. Each operation is one SQL statement (the sweeper's a transaction), and
 * products.reserved changes only under row locks taken here, so `available` (stock - reserved)
 * can never go below zero: the CHECK on products is the last line of defence, never the mechanism.
 */
export function createReservationStore(db: Database) {
  /** Same key: the stored answer (HELD, REJECTED, even a pre-emptive RELEASED), never a second hold. */
  function replay(existing: ReservationRecord, request: ReserveRequest): ReservationRecord {
    const releasedBeforeReserved = existing.orderId === null && existing.items.length === 0;
    if (
      !releasedBeforeReserved &&
      (existing.orderId !== request.orderId.toLowerCase() || !sameItems(existing.items, request.items))
    ) {
      throw new ReservationConflictError(
        `idempotency key ${request.idempotencyKey} was already used for another reservation`,
      );
    }
    return existing;
  }

  return {
    /**
     * Holds the units of every item, or none of them: when any product is short the result is a
     * REJECTED reservation naming it (a business outcome, recorded for retries), not an error.
     */
    async reserve(request: ReserveRequest): Promise<ReservationRecord> {
      const malformed = request.items.find((item) => !isUuid(item.productId));
      if (malformed) {
        const existing = await loadByKey(db, request.idempotencyKey);
        if (existing) return replay(existing, request);
        throw new UnknownProductError(malformed.productId);
      }
      // One statement (issue #7): the stored answer under the key if there is one; else the
      // products locked in id order (see lockProducts), each line checked against what is
      // available, and the reservation (REJECTED naming the short products, or HELD) with its
      // items at the locked prices and, when HELD, the units held. Nothing is written when a
      // product is unknown. The unique key is the lock between two calls with the same key: the
      // second waits for the first to commit, then inserts nothing and answers from the stored
      // reservation (read again: this statement's snapshot is older than that commit).
      const [row] = await db.query<{
        existing: ReservationJson | null;
        inserted: ReservationRow | null;
        lines: ReservationItemRecord[] | null;
        unknown: string | null;
      }>(
        `WITH existing AS MATERIALIZED (
           SELECT r.*, ${ITEMS_OF('r')} AS items FROM reservations r WHERE r.idempotency_key = $2
         ), asked AS MATERIALIZED (
           SELECT * FROM unnest($5::uuid[], $6::int[]) WITH ORDINALITY AS a (product_id, quantity, ord)
         ), locked AS MATERIALIZED (
           SELECT p.id, p.sku, p.price_cents, p.stock - p.reserved AS available FROM products p
           WHERE p.id = ANY($5::uuid[]) AND NOT EXISTS (SELECT 1 FROM existing)
           ORDER BY p.id FOR UPDATE OF p
         ), lines AS MATERIALIZED (
           SELECT a.product_id, a.quantity, a.ord, l.sku, l.price_cents, l.available
           FROM asked a JOIN locked l ON l.id = a.product_id
         ), verdict AS (
           SELECT count(*) = cardinality($5::uuid[]) AS complete,
                  string_agg(format('%s (%s requested, %s available)', sku, quantity, available), ', ' ORDER BY ord)
                    FILTER (WHERE available < quantity) AS short
           FROM lines
         ), reservation AS (
           INSERT INTO reservations (id, idempotency_key, order_id, status, reason, expires_at)
           SELECT $1, $2, $3, CASE WHEN short IS NULL THEN 'HELD' ELSE 'REJECTED' END,
                  'insufficient stock: ' || short, now() + make_interval(secs => $4::double precision / 1000)
           FROM verdict WHERE complete AND NOT EXISTS (SELECT 1 FROM existing)
           ON CONFLICT (idempotency_key) DO NOTHING RETURNING *
         ), items AS (
           INSERT INTO reservation_items (reservation_id, product_id, quantity, unit_price_cents)
           SELECT reservation.id, lines.product_id, lines.quantity, lines.price_cents FROM reservation, lines
         ), held AS (
           UPDATE products p SET reserved = p.reserved + lines.quantity, updated_at = now()
           FROM reservation, lines
           WHERE reservation.status = 'HELD' AND p.id = lines.product_id
         )
         SELECT (SELECT to_jsonb(e) FROM existing e) AS existing,
                (SELECT to_jsonb(r) FROM reservation r) AS inserted,
                (SELECT json_agg(json_build_object(
                   'productId', product_id, 'quantity', quantity, 'unitPriceCents', price_cents)) FROM lines) AS lines,
                (SELECT min(a.ord) FROM asked a WHERE NOT EXISTS (SELECT 1 FROM locked l WHERE l.id = a.product_id))
                  AS unknown`,
        [
          randomUUID(),
          request.idempotencyKey,
          request.orderId,
          request.ttlMs,
          request.items.map((item) => item.productId),
          request.items.map((item) => item.quantity),
        ],
      );
      if (row!.existing) return replay(fromJson(row!.existing), request);
      if (row!.inserted) return toRecord(row!.inserted, row!.lines ?? []);
      if (row!.unknown !== null)
        throw new UnknownProductError(request.items[Number(row!.unknown) - 1]!.productId);
      return replay((await loadByKey(db, request.idempotencyKey))!, request);
    },

    /**
     * Gives a HELD reservation's units back. Idempotent: a RELEASED, EXPIRED or REJECTED one is
     * returned as it is. A release by key that finds nothing records a RELEASED marker under the
     * key, so a reserve still in flight with that key (a saga compensating after a timeout)
     * can never hold stock afterwards.
     */
    async release(ref: { id: string } | { idempotencyKey: string }): Promise<ReservationRecord> {
      if ('id' in ref && !isUuid(ref.id)) throw new UnknownReservationError(ref.id);
      let settled = await settle(db, ref, ReservationStatus.RELEASED);
      // Neither found nor marked: the marker met a reserve with the key that committed after this
      // statement began (its snapshot cannot see it). Again, and it is found.
      if (!settled.before && !settled.after && 'idempotencyKey' in ref) {
        settled = await settle(db, ref, ReservationStatus.RELEASED);
      }
      const { before, after } = settled;
      if (before?.status === ReservationStatus.COMMITTED) throw new ReservationNotHeldError(fromJson(before));
      const reservation = after ?? before;
      if (!reservation) throw new UnknownReservationError('id' in ref ? ref.id : ref.idempotencyKey);
      return fromJson(reservation);
    },

    /**
     * Turns a HELD reservation into a sale: the units leave the stock. Idempotent for COMMITTED.
     * A reservation past its deadline is expired here rather than committed, even if the sweeper
     * has not reached it yet: its units may already be promised to nobody else, but the rule
     * must not depend on the sweeper's timing. The expiry is kept (it is written by the same
     * statement that then reports the reservation not HELD).
     */
    async commit(id: string): Promise<ReservationRecord> {
      if (!isUuid(id)) throw new UnknownReservationError(id);
      const { before, after } = await settle(db, { id }, ReservationStatus.COMMITTED);
      if (!before) throw new UnknownReservationError(id);
      if (before.status === ReservationStatus.COMMITTED) return fromJson(before);
      const reservation = fromJson(after ?? before);
      if (reservation.status !== ReservationStatus.COMMITTED) throw new ReservationNotHeldError(reservation);
      return reservation;
    },

    /**
     * Expires up to `limit` HELD reservations past their deadline and gives their units back.
     * SKIP LOCKED lets several replicas sweep at once, each taking different reservations, and
     * never waits on one that a commit or release is settling. Returns how many it expired.
     */
    async expireDue(limit: number): Promise<number> {
      // Most rounds find nothing due: one indexed read then, not a transaction (idle burn, #7).
      const [due] = await db.query(
        `SELECT 1 FROM reservations WHERE status = 'HELD' AND expires_at <= now() LIMIT 1`,
      );
      if (!due) return 0;
      return db.transaction(async (tx) => {
        const due = await tx.query<{ id: string }>(
          `SELECT id FROM reservations WHERE status = 'HELD' AND expires_at <= now()
           ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED`,
          [limit],
        );
        if (due.length === 0) return 0;
        const ids = due.map((r) => r.id);
        const items = await tx.query<{ product_id: string }>(
          'SELECT DISTINCT product_id FROM reservation_items WHERE reservation_id = ANY($1::uuid[])',
          [ids],
        );
        await lockProducts(
          tx,
          items.map((i) => i.product_id),
        );
        await tx.query(
          `UPDATE products p SET reserved = p.reserved - t.quantity, updated_at = now()
           FROM (SELECT product_id, sum(quantity)::int AS quantity FROM reservation_items
                 WHERE reservation_id = ANY($1::uuid[]) GROUP BY product_id) t
           WHERE p.id = t.product_id`,
          [ids],
        );
        await tx.query(
          `UPDATE reservations SET status = 'EXPIRED', reason = $2, updated_at = now()
           WHERE id = ANY($1::uuid[])`,
          [ids, EXPIRED_REASON],
        );
        return ids.length;
      });
    },
  };
}
export type ReservationStore = ReturnType<typeof createReservationStore>;
