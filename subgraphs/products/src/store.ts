import { randomUUID } from 'node:crypto';
import { isUniqueViolation, type Database } from '../../../lib/db/createDatabase.ts';
import { findByUuids } from '../../../lib/db/findByUuids.ts';
import { isUuid } from '../../../lib/ids.ts';

export interface ProductRecord {
  id: string;
  seq: number;
  sku: string;
  name: string;
  description: string | null;
  priceCents: number;
  stock: number;
  available: number;
  createdAt: Date;
}

interface ProductRow {
  id: string;
  seq: string | number;
  sku: string;
  name: string;
  description: string | null;
  price_cents: number;
  stock: number;
  reserved: number;
  created_at: Date;
}

const toRecord = (row: ProductRow): ProductRecord => ({
  id: row.id,
  seq: Number(row.seq),
  sku: row.sku,
  name: row.name,
  description: row.description,
  priceCents: row.price_cents,
  stock: row.stock,
  available: row.stock - row.reserved,
  createdAt: row.created_at,
});

export class DuplicateSkuError extends Error {}
export class UnknownProductError extends Error {}
export class StockOverflowError extends Error {}

/** `%` and `_` in a search term are literal characters, not wildcards. */
const escapeLike = (term: string) => term.replace(/[\\%_]/g, (c) => `\\${c}`);

export interface NewProduct {
  id?: string;
  sku: string;
  name: string;
  description: string | null;
  priceCents: number;
  stock: number;
}

export function createProductStore(db: Database) {
  return {
    async create(input: NewProduct): Promise<ProductRecord> {
      try {
        const [row] = await db.query<ProductRow>(
          `INSERT INTO products (id, sku, name, description, price_cents, stock)
           VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
          [input.id ?? randomUUID(), input.sku, input.name, input.description, input.priceCents, input.stock],
        );
        return toRecord(row!);
      } catch (error) {
        if (isUniqueViolation(error)) throw new DuplicateSkuError(input.sku);
        throw error;
      }
    },

    /** Atomic in SQL, so concurrent restocks add up instead of overwriting each other. */
    async restock(id: string, quantity: number): Promise<ProductRecord> {
      if (!isUuid(id)) throw new UnknownProductError(id);
      try {
        const [row] = await db.query<ProductRow>(
          `UPDATE products SET stock = stock + $2, updated_at = now() WHERE id = $1 RETURNING *`,
          [id, quantity],
        );
        if (!row) throw new UnknownProductError(id);
        return toRecord(row);
      } catch (error) {
        // 22003 numeric_value_out_of_range: the stock would pass PostgreSQL's integer.
        if ((error as { code?: string }).code === '22003') throw new StockOverflowError(id);
        throw error;
      }
    },

    findByIds: (ids: readonly string[]) =>
      findByUuids(
        db,
        'SELECT * FROM products WHERE id = ANY($1::uuid[])',
        ids,
        (row: ProductRow) => row.id,
        toRecord,
      ),

    /** Keyset page: rows after `afterSeq`, at most `limit`, optionally matching `search`. */
    async page({
      afterSeq,
      limit,
      search,
    }: {
      afterSeq: number | null;
      limit: number;
      search: string | null;
    }) {
      const rows = await db.query<ProductRow>(
        `SELECT * FROM products
         WHERE ($1::bigint IS NULL OR seq > $1)
           AND ($2::text IS NULL OR name ILIKE $2 OR sku ILIKE $2)
         ORDER BY seq
         LIMIT $3`,
        [afterSeq, search === null ? null : `%${escapeLike(search)}%`, limit],
      );
      return rows.map(toRecord);
    },

    async isEmpty(): Promise<boolean> {
      return (await db.query('SELECT 1 FROM products LIMIT 1')).length === 0;
    },
  };
}
export type ProductStore = ReturnType<typeof createProductStore>;
