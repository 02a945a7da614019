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
interface LoadedRow extends ReservationRow {
  /** Whether its deadline has passed, by the database's clock. */
  due: boolean;
  items: ReservationItemRecord[];
}
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
  // Dates whether the row came as columns or as JSON (the items' json_agg beside them).
  expiresAt: new Date(row.expires_at),
  createdAt: new Date(row.created_at),
  updatedAt: new Date(row.updated_at),
  items: [...items].sort((a, b) => a.productId.localeCompare(b.productId)),
});

/** The reservation, its items and whether it is due, in one statement (locked: FOR UPDATE). */
async function load(tx: Queryable, where: 'id' | 'idempotency_key', value: string, lock: boolean) {
  const [row] = await tx.query<LoadedRow>(
    `SELECT r.*, r.expires_at <= now() AS due,
       (SELECT COALESCE(json_agg(json_build_object(
                 'productId', i.product_id, 'quantity', i.quantity, 'unitPriceCents', i.unit_price_cents)), '[]')
        FROM reservation_items i WHERE i.reservation_id = r.id) AS items
     FROM reservations r WHERE r.${where} = $1${lock ? ' FOR UPDATE OF r' : ''}`,
    [value],
  );
  return row ? { record: toRecord(row, row.items), due: row.due } : null;
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

/**
 * Ends a HELD reservation (locked by the caller) as `status`: its units leave `reserved`, and
 * COMMITTED also takes them off the stock. The products are locked first (see lockProducts),
 * then one statement moves the units and sets the status. Returns the reservation as it now is.
 */
async function settle(
  tx: Queryable,
  reservation: ReservationRecord,
  status:
    typeof ReservationStatus.COMMITTED | typeof ReservationStatus.RELEASED | typeof ReservationStatus.EXPIRED,
  reason: string | null,
): Promise<ReservationRecord> {
  await lockProducts(
    tx,
    reservation.items.map((item) => item.productId),
  );
  const [row] = await tx.query<ReservationRow>(
    `WITH moved AS (
       UPDATE products p
       SET reserved = p.reserved - i.quantity,
           stock = p.stock - CASE WHEN $2::text = 'COMMITTED' THEN i.quantity ELSE 0 END,
           updated_at = now()
       FROM reservation_items i
       WHERE i.reservation_id = $1 AND p.id = i.product_id
     )
     UPDATE reservations SET status = $2::text, reason = COALESCE($3, reason), updated_at = now()
     WHERE id = $1 RETURNING *`,
    [reservation.id, status, reason],
  );
  return toRecord(row!, reservation.items);
}

const sameItems = (stored: ReservationItemRecord[], asked: ReserveRequest['items']) =>
  stored.length === asked.length &&
  [...asked]
    .sort((a, b) => a.productId.localeCompare(b.productId))
    .every(
      (item, i) =>
        stored[i]?.productId === item.productId.toLowerCase() && stored[i]?.quantity === item.quantity,
    );

const EXPIRED_REASON = 'not committed before it expired';

/**
 * Stock reservations. Each operation is one SQL transaction, and products.reserved changes only
 * under row locks taken here, so `available` (stock - reserved) can never go below zero: the
 * CHECK on products is the last line of defence, never the mechanism.
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
    reserve: (request: ReserveRequest): Promise<ReservationRecord> =>
      db.transaction(async (tx) => {
        const existing = await load(tx, 'idempotency_key', request.idempotencyKey, false);
        if (existing) return replay(existing.record, request);

        const unknown = request.items.find((item) => !isUuid(item.productId));
        if (unknown) throw new UnknownProductError(unknown.productId);
        const products = await lockProducts(
          tx,
          request.items.map((item) => item.productId),
        );
        const byId = new Map(products.map((p) => [p.id, p]));
        const lines = request.items.map((item) => {
          const product = byId.get(item.productId.toLowerCase());
          if (!product) throw new UnknownProductError(item.productId);
          return { ...item, productId: product.id, product };
        });
        const short = lines.filter((line) => line.product.available < line.quantity);
        const status = short.length ? ReservationStatus.REJECTED : ReservationStatus.HELD;
        const reason = short.length
          ? `insufficient stock: ${short
              .map((l) => `${l.product.sku} (${l.quantity} requested, ${l.product.available} available)`)
              .join(', ')}`
          : null;

        // The unique key is the lock between two calls with the same key: the second waits for
        // the first to commit, then inserts nothing and answers from the stored reservation.
        // One statement: the reservation, its items at the locked products' prices, and (HELD)
        // the units held; the items and the hold only if the reservation row went in.
        const id = randomUUID();
        const [inserted] = await tx.query<ReservationRow>(
          `WITH reservation AS (
             INSERT INTO reservations (id, idempotency_key, order_id, status, reason, expires_at)
             VALUES ($1, $2, $3, $4, $5, now() + make_interval(secs => $6::double precision / 1000))
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING *
           ), items AS (
             INSERT INTO reservation_items (reservation_id, product_id, quantity, unit_price_cents)
             SELECT reservation.id, i.product_id, i.quantity, i.unit_price_cents
             FROM reservation, unnest($7::uuid[], $8::int[], $9::int[]) AS i (product_id, quantity, unit_price_cents)
           ), held AS (
             UPDATE products p SET reserved = p.reserved + i.quantity, updated_at = now()
             FROM reservation, unnest($7::uuid[], $8::int[]) AS i (product_id, quantity)
             WHERE reservation.status = 'HELD' AND p.id = i.product_id
           )
           SELECT * FROM reservation`,
          [
            id,
            request.idempotencyKey,
            request.orderId,
            status,
            reason,
            request.ttlMs,
            lines.map((l) => l.productId),
            lines.map((l) => l.quantity),
            lines.map((l) => l.product.price_cents),
          ],
        );
        if (!inserted) {
          return replay((await load(tx, 'idempotency_key', request.idempotencyKey, false))!.record, request);
        }
        return toRecord(
          inserted,
          lines.map((l) => ({
            productId: l.productId,
            quantity: l.quantity,
            unitPriceCents: l.product.price_cents,
          })),
        );
      }),

    /**
     * Gives a HELD reservation's units back. Idempotent: a RELEASED, EXPIRED or REJECTED one is
     * returned as it is. A release by key that finds nothing records a RELEASED marker under the
     * key, so a reserve still in flight with that key (a saga compensating after a timeout)
     * can never hold stock afterwards.
     */
    release: (ref: { id: string } | { idempotencyKey: string }): Promise<ReservationRecord> =>
      db.transaction(async (tx) => {
        const findLocked = async () => {
          const found =
            'id' in ref
              ? isUuid(ref.id)
                ? await load(tx, 'id', ref.id, true)
                : null
              : await load(tx, 'idempotency_key', ref.idempotencyKey, true);
          return found?.record ?? null;
        };
        let reservation = await findLocked();
        if (!reservation && 'idempotencyKey' in ref) {
          await tx.query(
            `INSERT INTO reservations (id, idempotency_key, order_id, status, reason, expires_at)
             VALUES ($1, $2, NULL, 'RELEASED', 'released before anything was reserved', now())
             ON CONFLICT (idempotency_key) DO NOTHING`,
            [randomUUID(), ref.idempotencyKey],
          );
          reservation = await findLocked();
        }
        if (!reservation) throw new UnknownReservationError('id' in ref ? ref.id : ref.idempotencyKey);
        if (reservation.status === ReservationStatus.COMMITTED)
          throw new ReservationNotHeldError(reservation);
        if (reservation.status !== ReservationStatus.HELD) return reservation;
        return settle(tx, reservation, ReservationStatus.RELEASED, null);
      }),

    /**
     * Turns a HELD reservation into a sale: the units leave the stock. Idempotent for COMMITTED.
     * A reservation past its deadline is expired here rather than committed, even if the sweeper
     * has not reached it yet: its units may already be promised to nobody else, but the rule
     * must not depend on the sweeper's timing.
     */
    async commit(id: string): Promise<ReservationRecord> {
      const outcome = await db.transaction(async (tx) => {
        const loaded = isUuid(id) ? await load(tx, 'id', id, true) : null;
        if (!loaded) throw new UnknownReservationError(id);
        const reservation = loaded.record;
        if (reservation.status === ReservationStatus.COMMITTED) return { ok: true, reservation };
        if (reservation.status !== ReservationStatus.HELD) return { ok: false, reservation };
        const next = loaded.due ? ReservationStatus.EXPIRED : ReservationStatus.COMMITTED;
        return {
          ok: next === ReservationStatus.COMMITTED,
          reservation: await settle(
            tx,
            reservation,
            next,
            next === ReservationStatus.EXPIRED ? EXPIRED_REASON : null,
          ),
        };
      });
      // Thrown after the transaction, so an expiry decided here is kept.
      if (!outcome.ok) throw new ReservationNotHeldError(outcome.reservation);
      return outcome.reservation;
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
