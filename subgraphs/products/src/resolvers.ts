import DataLoader from 'dataloader';
import { z } from 'zod';
import { requireAdmin } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { badUserInput } from '../../../lib/errors.ts';
import { decodeCursor, pageSize, toConnection } from '../../../lib/graphql/connection.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { parseInput } from '../../../lib/graphql/parseInput.ts';
import {
  DuplicateSkuError,
  StockOverflowError,
  UnknownProductError,
  type ProductRecord,
  type ProductStore,
} from './store.ts';

export interface ProductsContext {
  viewer: Viewer | null;
  products: DataLoader<string, ProductRecord | null>;
}

export function createProductsContext(store: ProductStore, caller: ServiceCaller): ProductsContext {
  return { viewer: caller.viewer, products: new DataLoader((ids) => store.findByIds(ids)) };
}

const CURSOR_KIND = 'product';

const createProductInput = z.object({
  sku: z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .max(64, 'must be at most 64 characters')
    .regex(/^[A-Za-z0-9._-]+$/, 'may contain only letters, digits, ".", "_" and "-"'),
  name: z.string().trim().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  description: z.string().trim().max(2_000, 'must be at most 2000 characters').nullish(),
  priceCents: z.number().int().min(0, 'must not be negative'),
  stock: z.number().int().min(0, 'must not be negative'),
});
const restockInput = z.object({ id: z.string(), quantity: z.number().int().min(1, 'must be at least 1') });
const searchInput = z.string().trim().max(100, 'must be at most 100 characters').nullish();

export function createProductsResolvers({ store }: { store: ProductStore }) {
  return {
    DateTime: dateTimeScalar,
    Query: {
      product: (_: unknown, { id }: { id: string }, ctx: ProductsContext) => ctx.products.load(id),
      products: async (
        _: unknown,
        args: { first?: number | null; after?: string | null; search?: string | null },
      ) => {
        const size = pageSize(args.first);
        const afterSeq = decodeCursor(CURSOR_KIND, args.after);
        const search = parseInput(z.object({ search: searchInput }), { search: args.search }).search || null;
        const rows = await store.page({ afterSeq, limit: size + 1, search });
        return toConnection(CURSOR_KIND, rows, size, (row) => row.seq);
      },
    },
    Mutation: {
      createProduct: async (_: unknown, { input }: { input: unknown }, ctx: ProductsContext) => {
        requireAdmin(ctx.viewer);
        const valid = parseInput(createProductInput, input);
        try {
          return await store.create({ ...valid, description: valid.description || null });
        } catch (error) {
          if (error instanceof DuplicateSkuError) {
            throw badUserInput(`sku: a product with SKU ${valid.sku} already exists`);
          }
          throw error;
        }
      },
      restockProduct: async (_: unknown, args: { id: string; quantity: number }, ctx: ProductsContext) => {
        requireAdmin(ctx.viewer);
        const { id, quantity } = parseInput(restockInput, args);
        try {
          return await store.restock(id, quantity);
        } catch (error) {
          if (error instanceof UnknownProductError) throw badUserInput(`id: unknown product ${id}`);
          if (error instanceof StockOverflowError)
            throw badUserInput('quantity: the stock would be too large');
          throw error;
        }
      },
    },
    Product: {
      __resolveReference: (ref: { id: string }, ctx: ProductsContext) => ctx.products.load(ref.id),
    },
  };
}
