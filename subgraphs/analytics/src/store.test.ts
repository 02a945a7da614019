import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig, uniqueSchemaPrefix } from '../../../test/support/testConfig.ts';
import type { Database } from '../../../lib/db/createDatabase.ts';
import { migrate } from '../../../lib/db/migrate.ts';
import { openServiceDatabase } from '../../../lib/db/openServiceDatabase.ts';
import { createAnalyticsStore, revenueByDay, type OrderFact, type OrderStatus } from './store.ts';

const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) {
    if (db.kind === 'postgres') await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  }
});

async function freshStore() {
  const db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}analytics` });
  opened.push(db);
  await migrate(db, fileURLToPath(new URL('../migrations', import.meta.url)));
  const store = createAnalyticsStore(db);
  return { store, apply: (fact: OrderFact) => db.transaction((tx) => store.apply(tx, fact)) };
}

const productId = randomUUID();

function factOf(orderId: string, status: OrderStatus, version: number, at = new Date()): OrderFact {
  return {
    orderId,
    userId: '00000000-0000-4000-8000-000000000009',
    status,
    totalCents: 3 * 400,
    placedAt: at,
    occurredAt: at,
    version,
    items: [{ productId, quantity: 3, unitPriceCents: 400 }],
  };
}

describe('analytics store: one row per order, moved only by newer events', () => {
  it('an OrderPlaced arriving after its OrderConfirmed (a replay under new event ids) leaves it confirmed', async () => {
    const { store, apply } = await freshStore();
    const orderId = randomUUID();
    expect(await apply(factOf(orderId, 'PENDING', 1))).toBe(true);
    expect(await apply(factOf(orderId, 'CONFIRMED', 5))).toBe(true);
    const version = await store.version();

    expect(await apply(factOf(orderId, 'PENDING', 1))).toBe(false);
    expect(await apply(factOf(orderId, 'CONFIRMED', 5))).toBe(false);

    const snapshot = await store.snapshot();
    expect(snapshot).toMatchObject({
      version,
      totalOrders: 1,
      confirmedOrders: 1,
      cancelledOrders: 0,
      revenueCents: 1_200,
    });
    expect(snapshot.products).toEqual([{ productId, unitsSold: 3, revenueCents: 1_200 }]);
  });

  it('an order first seen by its OrderCancelled counts once, cancelled, with no revenue', async () => {
    const { store, apply } = await freshStore();
    const orderId = randomUUID();
    await apply(factOf(orderId, 'CANCELLED', 4));
    await apply(factOf(orderId, 'PENDING', 1));
    expect(await store.snapshot()).toMatchObject({
      totalOrders: 1,
      confirmedOrders: 0,
      cancelledOrders: 1,
      revenueCents: 0,
      products: [],
    });
  });

  it('revenue counts on the UTC day of confirmation; days without any are zero', async () => {
    const { store, apply } = await freshStore();
    const now = new Date('2026-03-10T12:00:00Z');
    await apply(factOf(randomUUID(), 'CONFIRMED', 5, new Date('2026-03-09T23:59:59Z')));
    await apply(factOf(randomUUID(), 'CONFIRMED', 5, new Date('2026-03-10T00:00:01Z')));
    await apply(factOf(randomUUID(), 'CONFIRMED', 5, new Date('2026-03-10T08:00:00Z')));
    expect(revenueByDay(await store.snapshot(now), 3)).toEqual([
      { day: '2026-03-08', revenueCents: 0, orders: 0 },
      { day: '2026-03-09', revenueCents: 1_200, orders: 1 },
      { day: '2026-03-10', revenueCents: 2_400, orders: 2 },
    ]);
  });
});
