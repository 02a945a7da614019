import DataLoader from 'dataloader';
import { z } from 'zod';
import { requireAdmin, requireServiceCaller } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { appError, badUserInput, ErrorCode } from '../../../lib/errors.ts';
import { decodeCursor, pageSize, toConnection } from '../../../lib/graphql/connection.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { parseInput } from '../../../lib/graphql/parseInput.ts';
import { isUuid } from '../../../lib/ids.ts';
import {
  ReservationConflictError,
  ReservationNotHeldError,
  UnknownProductError as UnknownReservedProductError,
  UnknownReservationError,
  type ReservationRecord,
  type ReservationStore,
} from './reservationStore.ts';
import {
  DuplicateSkuError,
  StockOverflowError,
  UnknownProductError,
  type ProductRecord,
  type ProductStore,
} from './store.ts';

export interface ProductsContext {
  /** The verified service that signed the request (the gateway, or a sibling service). */
  caller: ServiceCaller;
  viewer: Viewer | null;
  products: DataLoader<string, ProductRecord | null>;
}

export function createProductsContext(store: ProductStore, caller: ServiceCaller): ProductsContext {
  return { caller, viewer: caller.viewer, products: new DataLoader((ids) => store.findByIds(ids)) };
}

/**
 * Services allowed to reserve, release and commit stock. The gateway is not one of them: the
 * operations are @inaccessible, and this check keeps it so even if a query reached them.
 */
export const RESERVATION_CALLERS: readonly string[] = ['orders'];

/** How long units stay held when the caller does not say. */
export const DEFAULT_RESERVATION_TTL_SECONDS = 15 * 60;
const MAX_RESERVATION_TTL_SECONDS = 24 * 60 * 60;

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
const reserveStockInput = z.object({
  idempotencyKey: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  orderId: z.string().refine(isUuid, 'must be a UUID'),
  items: z
    .array(
      z.object({
        productId: z.string(),
        quantity: z.number().int().min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000'),
      }),
    )
    .min(1, 'must not be empty')
    .max(100, 'must have at most 100 entries'),
  ttlSeconds: z
    .number()
    .int()
    .min(1, 'must be at least 1')
    .max(MAX_RESERVATION_TTL_SECONDS, `must be at most ${MAX_RESERVATION_TTL_SECONDS}`)
    .nullish(),
});
const releaseInput = z
  .object({ id: z.string().nullish(), idempotencyKey: z.string().min(1).max(200).nullish() })
  .refine(
    (ref) => (ref.id == null) !== (ref.idempotencyKey == null),
    'give exactly one of id and idempotencyKey',
  );

/** Two lines for one product are one line of their total quantity. */
function mergeItems(items: { productId: string; quantity: number }[]) {
  const byProduct = new Map<string, number>();
  for (const { productId, quantity } of items) {
    const key = productId.toLowerCase();
    byProduct.set(key, (byProduct.get(key) ?? 0) + quantity);
  }
  return [...byProduct].map(([productId, quantity]) => ({ productId, quantity }));
}

function requireReservationCaller(ctx: ProductsContext) {
  requireServiceCaller(ctx.caller, RESERVATION_CALLERS, 'reserve, release or commit stock');
}

/** Store errors as the stable codes a calling service switches on. */
function toReservationError(error: unknown): unknown {
  if (error instanceof ReservationConflictError)
    return appError(ErrorCode.IDEMPOTENCY_CONFLICT, error.message);
  if (error instanceof UnknownReservedProductError) return badUserInput(`items: ${error.message}`);
  if (error instanceof UnknownReservationError) return badUserInput(`unknown reservation ${error.message}`);
  if (error instanceof ReservationNotHeldError) {
    return appError(ErrorCode.RESERVATION_NOT_HELD, error.message, { status: error.reservation.status });
  }
  return error;
}

const searchInput = z.string().trim().max(100, 'must be at most 100 characters').nullish();

export function createProductsResolvers({
  store,
  reservations,
}: {
  store: ProductStore;
  reservations: ReservationStore;
}) {
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
      reserveStock: async (_: unknown, { input }: { input: unknown }, ctx: ProductsContext) => {
        requireReservationCaller(ctx);
        const valid = parseInput(reserveStockInput, input);
        try {
          return await reservations.reserve({
            idempotencyKey: valid.idempotencyKey,
            orderId: valid.orderId,
            items: mergeItems(valid.items),
            ttlMs: (valid.ttlSeconds ?? DEFAULT_RESERVATION_TTL_SECONDS) * 1000,
          });
        } catch (error) {
          throw toReservationError(error);
        }
      },
      releaseReservation: async (_: unknown, args: unknown, ctx: ProductsContext) => {
        requireReservationCaller(ctx);
        const { id, idempotencyKey } = parseInput(releaseInput, args);
        try {
          return await reservations.release(id != null ? { id } : { idempotencyKey: idempotencyKey! });
        } catch (error) {
          throw toReservationError(error);
        }
      },
      commitReservation: async (_: unknown, { id }: { id: string }, ctx: ProductsContext) => {
        requireReservationCaller(ctx);
        try {
          return await reservations.commit(id);
        } catch (error) {
          throw toReservationError(error);
        }
      },
    },
    Reservation: {
      totalCents: (reservation: ReservationRecord) =>
        reservation.items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0),
    },
    ReservationItem: {
      product: (item: ReservationRecord['items'][number], _: unknown, ctx: ProductsContext) =>
        ctx.products.load(item.productId),
    },
    Product: {
      __resolveReference: (ref: { id: string }, ctx: ProductsContext) => ctx.products.load(ref.id),
    },
  };
}
