import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { bearer, postGraphQL } from '../shared/graphql.ts';
import { percentile } from '../shared/report.ts';
import type { OrderResponses } from './orderRequests.ts';

/**
 * After a round: waits for every order it placed to settle and reach analytics, then checks
 * "zero lost or duplicated orders" against the services' own databases and the public API.
 *
 * Reads each service's schema directly (read-only): the public API has no "orders with these
 * idempotency keys" or "when did analytics apply this event", and the harness needs both.
 */
export interface RoundCheck {
  /** Successful placeOrder responses, and distinct order ids among them. */
  responses: number;
  distinctResponseIds: number;
  /** Orders in the database placed by this round's requests (their idempotency keys). */
  ordersInDb: number;
  distinctKeys: number;
  /** Orders in the database no response named: requests still in flight when the round ended. */
  unanswered: number;
  /** Ids a successful response named that the database does not have. */
  missingFromDb: number;
  confirmed: number;
  /** Responses that said PENDING (the saga outlived ORDER_SAGA_WAIT_MS). */
  returnedPending: number;
  notConfirmed: Record<string, number>;
  /** Analytics: facts for this round's orders, and how many have the order's final status. */
  analyticsFacts: number;
  analyticsAgreeing: number;
  /** Public API: Query.salesMetrics totalOrders and confirmedOrders, grown during the round. */
  salesMetricsTotalDelta: number;
  salesMetricsConfirmedDelta: number;
  /** Payments: captured payments for this round's orders, and payments in all. */
  captured: number;
  payments: number;
  /** ORDER_CONFIRMED emails sent (RabbitMQ worker) for this round's orders. */
  emailsSent: number;
  /** From the round's end until salesMetrics (public API, polled) showed every order, ms. */
  publicCatchUpMs: number;
  /** From the round's end until the last event was applied in analytics, ms. */
  lastAppliedAfterEndMs: number;
  /** Mutation response → OrderConfirmed applied in analytics, per answered order, ms. */
  responseToAnalyticsMs: number[];
  /** Order confirmed in the orders database → applied in analytics (outbox, Kafka, consumer), ms. */
  confirmToAnalyticsMs: number[];
  problems: string[];
}

export interface SalesCounts {
  totalOrders: number;
  confirmedOrders: number;
}

const SETTLED = `saga_state NOT IN ('RUNNING', 'COMPENSATING')`;

export function createVerifier(options: {
  databaseUrl: string;
  schemaPrefix: string;
  gatewayUrl: string;
  adminToken: string;
  timeoutMs: number;
}) {
  const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 2 });
  const schema = (service: string) => `${options.schemaPrefix}${service}`;
  const orders = `${schema('orders')}.orders`;
  const facts = `${schema('analytics')}.order_facts`;

  async function salesCounts(): Promise<SalesCounts> {
    const { salesMetrics } = await postGraphQL<{ salesMetrics: SalesCounts }>(
      options.gatewayUrl,
      '{ salesMetrics { totalOrders confirmedOrders } }',
      {},
      bearer(options.adminToken),
    );
    return salesMetrics;
  }

  async function until(what: string, problems: string[], test: () => Promise<boolean>): Promise<boolean> {
    const deadline = Date.now() + options.timeoutMs;
    while (Date.now() < deadline) {
      if (await test()) return true;
      await sleep(50);
    }
    problems.push(`timed out after ${options.timeoutMs} ms waiting for ${what}`);
    return false;
  }

  async function checkRound(
    keyPrefix: string,
    responses: OrderResponses,
    endedAtMs: number,
    salesBefore: SalesCounts,
  ): Promise<RoundCheck> {
    const problems: string[] = [];
    const like = `${keyPrefix.replace(/[\\%_]/g, '\\$&')}%`;
    await until('every saga to end', problems, async () => {
      const { rows } = await pool.query<{ running: number }>(
        `SELECT count(*)::int AS running FROM ${orders} WHERE idempotency_key LIKE $1 AND NOT (${SETTLED})`,
        [like],
      );
      return rows[0]!.running === 0;
    });
    const { rows: placed } = await pool.query<{
      id: string;
      status: string;
      key: string;
      confirmed_at_ms: number;
    }>(
      `SELECT id, status, idempotency_key AS key,
              extract(epoch FROM updated_at)::float8 * 1000 AS confirmed_at_ms
       FROM ${orders} WHERE idempotency_key LIKE $1`,
      [like],
    );
    const ids = placed.map((o) => o.id);
    const confirmed = placed.filter((o) => o.status === 'CONFIRMED').length;

    // Analytics caught up, as a client sees it (public API, polled every 50 ms)...
    let caughtUpAt = NaN;
    let sales = salesBefore;
    await until('salesMetrics to count every order', problems, async () => {
      sales = await salesCounts();
      if (
        sales.totalOrders - salesBefore.totalOrders >= placed.length &&
        sales.confirmedOrders - salesBefore.confirmedOrders >= confirmed
      ) {
        caughtUpAt = Date.now();
        return true;
      }
      return false;
    });
    // ...and per order, as analytics recorded it: its fact's updated_at is the now() of the
    // transaction that applied the status-changing event (OrderConfirmed).
    const { rows: applied } = await pool.query<{ order_id: string; status: string; applied_at_ms: number }>(
      `SELECT order_id, status, extract(epoch FROM updated_at)::float8 * 1000 AS applied_at_ms
       FROM ${facts} WHERE order_id = ANY($1::uuid[])`,
      [ids],
    );
    const factOf = new Map(applied.map((f) => [f.order_id, f]));
    const placedById = new Map(placed.map((o) => [o.id, o]));
    const responseToAnalyticsMs: number[] = [];
    responses.ids.forEach((id, i) => {
      const fact = factOf.get(id);
      if (fact?.status === 'CONFIRMED') responseToAnalyticsMs.push(fact.applied_at_ms - responses.atMs[i]!);
    });
    const confirmToAnalyticsMs = placed
      .filter((o) => o.status === 'CONFIRMED' && factOf.get(o.id)?.status === 'CONFIRMED')
      .map((o) => factOf.get(o.id)!.applied_at_ms - o.confirmed_at_ms);

    const { rows: paid } = await pool.query<{ captured: number; payments: number }>(
      `SELECT count(*) FILTER (WHERE status = 'CAPTURED')::int AS captured, count(*)::int AS payments
       FROM ${schema('payments')}.payments WHERE order_id = ANY($1::uuid[])`,
      [ids],
    );
    // The RabbitMQ leg: one ORDER_CONFIRMED email per confirmed order, sent by the worker.
    let emailsSent = 0;
    await until('the confirmation emails', problems, async () => {
      const { rows } = await pool.query<{ sent: number }>(
        `SELECT count(*)::int AS sent FROM ${schema('notifications')}.notifications
         WHERE kind = 'ORDER_CONFIRMED' AND status = 'SENT'
           AND substring(subject FROM 'Your order (\\S+) is confirmed') = ANY($1::text[])`,
        [ids],
      );
      emailsSent = rows[0]!.sent;
      return emailsSent >= confirmed;
    });

    const responseIds = new Set(responses.ids);
    const notConfirmed: Record<string, number> = {};
    for (const o of placed)
      if (o.status !== 'CONFIRMED') notConfirmed[o.status] = (notConfirmed[o.status] ?? 0) + 1;
    const check: RoundCheck = {
      responses: responses.ids.length,
      distinctResponseIds: responseIds.size,
      ordersInDb: placed.length,
      distinctKeys: new Set(placed.map((o) => o.key)).size,
      unanswered: placed.filter((o) => !responseIds.has(o.id)).length,
      missingFromDb: [...responseIds].filter((id) => !placedById.has(id)).length,
      confirmed,
      returnedPending: responses.statuses.filter((s) => s === 'PENDING').length,
      notConfirmed,
      analyticsFacts: applied.length,
      analyticsAgreeing: applied.filter((f) => f.status === placedById.get(f.order_id)?.status).length,
      salesMetricsTotalDelta: sales.totalOrders - salesBefore.totalOrders,
      salesMetricsConfirmedDelta: sales.confirmedOrders - salesBefore.confirmedOrders,
      captured: paid[0]!.captured,
      payments: paid[0]!.payments,
      emailsSent,
      publicCatchUpMs: caughtUpAt - endedAtMs,
      lastAppliedAfterEndMs: Math.max(...applied.map((f) => f.applied_at_ms)) - endedAtMs,
      responseToAnalyticsMs,
      confirmToAnalyticsMs,
      problems,
    };
    problems.push(...lostOrDuplicated(check));
    return check;
  }

  /** Stock is conserved: what left the shelves is exactly what confirmed orders bought. */
  async function checkStock(initialStockTotal: number): Promise<string[]> {
    const { rows } = await pool.query<{ stock: string; reserved: string }>(
      `SELECT sum(stock)::text AS stock, sum(reserved)::text AS reserved FROM ${schema('products')}.products`,
    );
    const { rows: sold } = await pool.query<{ units: string | null }>(
      `SELECT sum(i.quantity)::text AS units FROM ${schema('orders')}.order_items i
       JOIN ${orders} o ON o.id = i.order_id WHERE o.status = 'CONFIRMED'`,
    );
    const stock = Number(rows[0]!.stock);
    const units = Number(sold[0]!.units ?? 0);
    const problems: string[] = [];
    if (Number(rows[0]!.reserved) !== 0) problems.push(`${rows[0]!.reserved} units still reserved`);
    if (stock !== initialStockTotal - units) {
      problems.push(`stock ${stock} ≠ initial ${initialStockTotal} − ${units} units sold`);
    }
    return problems;
  }

  /**
   * Rows inserted, updated and deleted so far per service (pg_stat_user_tables of its schema),
   * and the orders placed so far. PostgreSQL publishes a backend's counts lazily (within 10 s
   * when idle), so only differences across quiet moments are exact.
   */
  async function databaseWork(): Promise<{ rows: Record<string, number>; orders: number }> {
    const { rows } = await pool.query<{ schema: string; rows: string }>(
      `SELECT schemaname AS schema, sum(n_tup_ins + n_tup_upd + n_tup_del)::text AS rows
       FROM pg_stat_user_tables WHERE starts_with(schemaname, $1) GROUP BY schemaname`,
      [options.schemaPrefix],
    );
    const { rows: placed } = await pool.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM ${orders}`,
    );
    return {
      rows: Object.fromEntries(
        rows.map((r) => [r.schema.slice(options.schemaPrefix.length), Number(r.rows)]),
      ),
      orders: placed[0]!.count,
    };
  }

  return { salesCounts, checkRound, checkStock, databaseWork, close: () => pool.end() };
}

/** The checks behind "zero lost or duplicated orders"; empty when they all hold. */
export function lostOrDuplicated(c: RoundCheck): string[] {
  const problems: string[] = [];
  if (c.distinctResponseIds !== c.responses) {
    problems.push(`${c.responses - c.distinctResponseIds} responses named an order another one named`);
  }
  if (c.missingFromDb) problems.push(`${c.missingFromDb} answered orders missing from the orders database`);
  if (c.distinctKeys !== c.ordersInDb)
    problems.push(`${c.ordersInDb - c.distinctKeys} orders share a request`);
  if (c.confirmed !== c.ordersInDb) problems.push(`not CONFIRMED: ${JSON.stringify(c.notConfirmed)}`);
  if (c.analyticsFacts !== c.ordersInDb || c.analyticsAgreeing !== c.ordersInDb) {
    problems.push(
      `analytics has ${c.analyticsFacts} facts (${c.analyticsAgreeing} agreeing) for ${c.ordersInDb} orders`,
    );
  }
  if (c.salesMetricsTotalDelta !== c.ordersInDb || c.salesMetricsConfirmedDelta !== c.confirmed) {
    problems.push(
      `salesMetrics grew by ${c.salesMetricsTotalDelta} orders (${c.salesMetricsConfirmedDelta} confirmed) for ${c.ordersInDb} (${c.confirmed})`,
    );
  }
  if (c.payments !== c.ordersInDb || c.captured !== c.confirmed) {
    problems.push(`${c.payments} payments (${c.captured} captured) for ${c.ordersInDb} orders`);
  }
  if (c.emailsSent !== c.confirmed) problems.push(`${c.emailsSent} confirmation emails for ${c.confirmed}`);
  return problems;
}

export const latencySummary = (values: number[]) => {
  const sorted = Float64Array.from(values).sort();
  return {
    p50: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
};
