import type { Database, Queryable } from '../../../lib/db/createDatabase.ts';

export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';

/** What one status-changing order event says about its order. */
export interface OrderFact {
  orderId: string;
  userId: string;
  status: OrderStatus;
  totalCents: number;
  placedAt: Date;
  /** The event's time: when the order ended, for CONFIRMED and CANCELLED. */
  occurredAt: Date;
  version: number;
  items: { productId: string; quantity: number; unitPriceCents: number }[];
}

/** revenueByDay reaches back at most this many days; topProducts lists at most TOP_PRODUCTS_MAX. */
export const REVENUE_DAYS_MAX = 366;
export const TOP_PRODUCTS_MAX = 100;

/** The metrics at one version of the analytics database, read in one statement (one snapshot). */
export interface MetricsSnapshot {
  version: number;
  totalOrders: number;
  confirmedOrders: number;
  cancelledOrders: number;
  revenueCents: number;
  updatedAt: Date;
  /** When the snapshot was read: "today" for revenueByDay. */
  readAt: Date;
  /** Confirmed revenue and orders per UTC day (YYYY-MM-DD), for the last REVENUE_DAYS_MAX days. */
  days: Map<string, { revenueCents: number; orders: number }>;
  /** The TOP_PRODUCTS_MAX best sellers, by revenue. */
  products: { productId: string; unitsSold: number; revenueCents: number }[];
}

interface SnapshotRow {
  version: { version: string | number; updated_at: string };
  totals: { total: number; confirmed: number; cancelled: number; revenue: string | number };
  days: { day: string; revenue: string | number; orders: number }[];
  products: { product_id: string; units: string | number; revenue: string | number }[];
}

const DAY_MS = 24 * 60 * 60 * 1000;

export function utcDay(date: Date): string {
  return date.toISOString().slice(0, 10);
}

export function createAnalyticsStore(db: Database) {
  return {
    /**
     * Records what `fact` says about its order, in the consumer's transaction. The status changes
     * only for a newer event (higher version) than the one that set it; the items and totals of
     * an order never change. True when something changed (and the version counter moved).
     */
    async apply(tx: Queryable, fact: OrderFact): Promise<boolean> {
      const ended = fact.status === 'PENDING' ? null : fact.occurredAt;
      const changed = await tx.query<{ inserted: boolean }>(
        `INSERT INTO order_facts (order_id, user_id, status, total_cents, placed_at, ended_at, version)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (order_id) DO UPDATE SET
           status = EXCLUDED.status, ended_at = EXCLUDED.ended_at, version = EXCLUDED.version,
           updated_at = now()
         WHERE order_facts.version < EXCLUDED.version AND order_facts.status <> EXCLUDED.status
         RETURNING (xmax = 0) AS inserted`,
        [fact.orderId, fact.userId, fact.status, fact.totalCents, fact.placedAt, ended, fact.version],
      );
      const [row] = changed;
      if (!row) return false;
      if (row.inserted) {
        for (const [position, item] of fact.items.entries()) {
          await tx.query(
            `INSERT INTO order_fact_items (order_id, position, product_id, quantity, unit_price_cents)
             VALUES ($1, $2, $3, $4, $5)`,
            [fact.orderId, position, item.productId, item.quantity, item.unitPriceCents],
          );
        }
      }
      await tx.query('UPDATE metrics_version SET version = version + 1, updated_at = now() WHERE id = 1');
      return true;
    },

    /** The change counter alone: what replicas poll to learn that another one changed the metrics. */
    async version(): Promise<number> {
      const [row] = await db.query<{ version: string | number }>(
        'SELECT version FROM metrics_version WHERE id = 1',
      );
      return Number(row?.version ?? 0);
    },

    async snapshot(now = new Date()): Promise<MetricsSnapshot> {
      const since = new Date(Date.parse(utcDay(now)) - (REVENUE_DAYS_MAX - 1) * DAY_MS);
      const [row] = await db.query<SnapshotRow>(
        `SELECT
           (SELECT row_to_json(v) FROM (SELECT version, updated_at FROM metrics_version WHERE id = 1) v)
             AS version,
           (SELECT row_to_json(t) FROM (
              SELECT count(*)::int AS total,
                     count(*) FILTER (WHERE status = 'CONFIRMED')::int AS confirmed,
                     count(*) FILTER (WHERE status = 'CANCELLED')::int AS cancelled,
                     COALESCE(sum(total_cents) FILTER (WHERE status = 'CONFIRMED'), 0)::bigint AS revenue
              FROM order_facts) t) AS totals,
           (SELECT COALESCE(json_agg(d), '[]') FROM (
              SELECT to_char(ended_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day,
                     sum(total_cents)::bigint AS revenue, count(*)::int AS orders
              FROM order_facts WHERE status = 'CONFIRMED' AND ended_at >= $1
              GROUP BY 1) d) AS days,
           (SELECT COALESCE(json_agg(p), '[]') FROM (
              SELECT i.product_id, sum(i.quantity)::bigint AS units,
                     sum(i.quantity::bigint * i.unit_price_cents)::bigint AS revenue
              FROM order_fact_items i JOIN order_facts f ON f.order_id = i.order_id
              WHERE f.status = 'CONFIRMED'
              GROUP BY i.product_id
              ORDER BY revenue DESC, units DESC, i.product_id
              LIMIT $2) p) AS products`,
        [since, TOP_PRODUCTS_MAX],
      );
      const { version, totals, days, products } = row!;
      return {
        version: Number(version.version),
        totalOrders: totals.total,
        confirmedOrders: totals.confirmed,
        cancelledOrders: totals.cancelled,
        revenueCents: Number(totals.revenue),
        updatedAt: new Date(version.updated_at),
        readAt: now,
        days: new Map(
          days.map((d) => [d.day, { revenueCents: Number(d.revenue), orders: d.orders }] as const),
        ),
        products: products.map((p) => ({
          productId: p.product_id,
          unitsSold: Number(p.units),
          revenueCents: Number(p.revenue),
        })),
      };
    },
  };
}
export type AnalyticsStore = ReturnType<typeof createAnalyticsStore>;

/** The last `count` UTC days up to the snapshot's, oldest first, zero where nothing was confirmed. */
export function revenueByDay(snapshot: MetricsSnapshot, count: number) {
  const today = Date.parse(utcDay(snapshot.readAt));
  return Array.from({ length: count }, (_, index) => {
    const day = utcDay(new Date(today - (count - 1 - index) * DAY_MS));
    return { day, ...(snapshot.days.get(day) ?? { revenueCents: 0, orders: 0 }) };
  });
}
