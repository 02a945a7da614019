import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { Database } from '../../../lib/db/createDatabase.ts';
import { migrate } from '../../../lib/db/migrate.ts';
import { openServiceDatabase } from '../../../lib/db/openServiceDatabase.ts';
import { testConfig, uniqueSchemaPrefix } from '../../../test/support/testConfig.ts';
import { createReservationStore } from './reservationStore.ts';
import { createProductStore } from './store.ts';

const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) {
    if (db.kind === 'postgres') await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  }
});

async function productsDatabase() {
  const db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}products` });
  opened.push(db);
  await migrate(db, fileURLToPath(new URL('../migrations', import.meta.url)));
  return db;
}

describe('reservation expiry', () => {
  it('several sweepers at once expire each reservation once and give its units back once', async () => {
    const db = await productsDatabase();
    const products = createProductStore(db);
    const reservations = createReservationStore(db);
    const product = await products.create({
      sku: 'SWEEP-1',
      name: 'Sweep',
      description: null,
      priceCents: 100,
      stock: 30,
    });
    for (let i = 0; i < 25; i++) {
      await reservations.reserve({
        idempotencyKey: randomUUID(),
        orderId: randomUUID(),
        items: [{ productId: product.id, quantity: 1 }],
        ttlMs: 1,
      });
    }
    await new Promise((resolve) => setTimeout(resolve, 20));

    // Four "replicas" sweeping in small batches until nothing is left.
    const sweep = async () => {
      let total = 0;
      for (let n = await reservations.expireDue(4); n > 0; n = await reservations.expireDue(4)) total += n;
      return total;
    };
    const expired = await Promise.all([sweep(), sweep(), sweep(), sweep()]);

    expect(expired.reduce((a, b) => a + b, 0)).toBe(25);
    const [found] = await products.findByIds([product.id]);
    expect(found).toMatchObject({ stock: 30, available: 30 });
  });

  it('a commit after the deadline expires the reservation instead, even before any sweep', async () => {
    const db = await productsDatabase();
    const products = createProductStore(db);
    const reservations = createReservationStore(db);
    const product = await products.create({
      sku: 'LATE-1',
      name: 'Late',
      description: null,
      priceCents: 100,
      stock: 2,
    });
    const held = await reservations.reserve({
      idempotencyKey: randomUUID(),
      orderId: randomUUID(),
      items: [{ productId: product.id, quantity: 2 }],
      ttlMs: 1,
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    await expect(reservations.commit(held.id)).rejects.toThrow(/EXPIRED/);
    const [found] = await products.findByIds([product.id]);
    expect(found).toMatchObject({ stock: 2, available: 2 });
  });
});
