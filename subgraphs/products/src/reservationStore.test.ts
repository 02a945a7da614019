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

/** The products and reservations of a fresh schema, and a way to add a product to it. */
async function productsDatabase() {
  const db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}products` });
  opened.push(db);
  await migrate(db, fileURLToPath(new URL('../migrations', import.meta.url)));
  const products = createProductStore(db);
  const aProduct = (sku: string, stock: number, priceCents = 100) =>
    products.create({ sku, name: sku, description: null, priceCents, stock });
  return { products, reservations: createReservationStore(db), aProduct };
}

describe('reservation expiry', () => {
  it('several sweepers at once expire each reservation once and give its units back once', async () => {
    const { products, reservations, aProduct } = await productsDatabase();
    const product = await aProduct('SWEEP-1', 30);
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
    const { products, reservations, aProduct } = await productsDatabase();
    const product = await aProduct('LATE-1', 2);
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

describe('reservations under concurrency', () => {
  it('overlapping reserves, commits and releases never deadlock, oversell or lose a unit', async () => {
    const { products, reservations, aProduct } = await productsDatabase();
    const stock = 40;
    const made: Awaited<ReturnType<typeof aProduct>>[] = [];
    for (let i = 0; i < 3; i++) {
      made.push(await aProduct(`MIX-${i}`, stock));
    }
    // Each order takes two of the three products, named in either order.
    const orders = Array.from({ length: 30 }, (_, i) => {
      const [a, b] = [made[i % 3]!, made[(i + 1) % 3]!];
      return i % 2 ? [b, a] : [a, b];
    });
    const outcomes = await Promise.all(
      orders.map(async (pair, i) => {
        const key = randomUUID();
        const request = {
          idempotencyKey: key,
          orderId: randomUUID(),
          items: pair.map((product) => ({ productId: product.id, quantity: 2 })),
          ttlMs: 60_000,
        };
        // The same key twice at once: one reservation, held once.
        const [held, again] = await Promise.all([
          reservations.reserve(request),
          reservations.reserve(request),
        ]);
        expect(again.id).toBe(held.id);
        if (held.status !== 'HELD') return { pair, sold: false, held };
        const sold = i % 3 !== 0;
        const [first, second] = await Promise.all(
          sold
            ? [reservations.commit(held.id), reservations.commit(held.id)]
            : [reservations.release({ idempotencyKey: key }), reservations.release({ id: held.id })],
        );
        expect([first.status, second.status]).toEqual(
          sold ? ['COMMITTED', 'COMMITTED'] : ['RELEASED', 'RELEASED'],
        );
        return { pair, sold, held };
      }),
    );
    const soldOf = (id: string) =>
      outcomes.filter((o) => o.sold && o.pair.some((p) => p.id === id)).length * 2;
    const found = await products.findByIds(made.map((p) => p.id));
    for (const product of found) {
      expect(product).toMatchObject({
        stock: stock - soldOf(product!.id),
        available: stock - soldOf(product!.id),
      });
    }
  });

  it('a release by key before the reserve leaves a marker, and the reserve then holds nothing', async () => {
    const { products, reservations, aProduct } = await productsDatabase();
    const product = await aProduct('EARLY-1', 3, 5);
    const key = randomUUID();
    const marker = await reservations.release({ idempotencyKey: key });
    expect(marker).toMatchObject({ status: 'RELEASED', orderId: null, items: [] });
    const late = await reservations.reserve({
      idempotencyKey: key,
      orderId: randomUUID(),
      items: [{ productId: product.id, quantity: 1 }],
      ttlMs: 60_000,
    });
    expect(late).toMatchObject({ id: marker.id, status: 'RELEASED' });
    const [found] = await products.findByIds([product.id]);
    expect(found).toMatchObject({ stock: 3, available: 3 });
  });

  it('a short product rejects the whole reservation, naming it in the order asked, and holds nothing', async () => {
    const { products, reservations, aProduct } = await productsDatabase();
    const plenty = await aProduct('PLENTY', 9, 7);
    const few = await aProduct('FEW', 1, 3);
    const rejected = await reservations.reserve({
      idempotencyKey: randomUUID(),
      orderId: randomUUID(),
      items: [
        { productId: few.id, quantity: 2 },
        { productId: plenty.id, quantity: 10 },
      ],
      ttlMs: 60_000,
    });
    expect(rejected).toMatchObject({
      status: 'REJECTED',
      reason: 'insufficient stock: FEW (2 requested, 1 available), PLENTY (10 requested, 9 available)',
    });
    expect(rejected.items).toHaveLength(2);
    const unknown = randomUUID();
    await expect(
      reservations.reserve({
        idempotencyKey: randomUUID(),
        orderId: randomUUID(),
        items: [
          { productId: plenty.id, quantity: 1 },
          { productId: unknown, quantity: 1 },
        ],
        ttlMs: 60_000,
      }),
    ).rejects.toThrow(`unknown product ${unknown}`);
    const found = await products.findByIds([plenty.id, few.id]);
    expect(found.map((p) => p!.available)).toEqual([9, 1]);
  });
});
