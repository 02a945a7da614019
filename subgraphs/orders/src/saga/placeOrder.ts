import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { z } from 'zod';
import { requireViewer } from '../../../../lib/auth/authorize.ts';
import type { Viewer } from '../../../../lib/auth/tokens.ts';
import { isUniqueViolation } from '../../../../lib/db/createDatabase.ts';
import { appError, badUserInput, ErrorCode } from '../../../../lib/errors.ts';
import { parseInput } from '../../../../lib/graphql/parseInput.ts';
import type { OrderItemRecord } from '../store.ts';
import type { SagaRunner } from './createSagaRunner.ts';
import type { SubgraphClient } from './createSubgraphClient.ts';
import type { SagaOrder, SagaStore } from './sagaStore.ts';

const placeOrderInput = z.object({
  items: z
    .array(
      z.object({
        productId: z.string().min(1, 'must not be empty'),
        quantity: z.number().int().min(1, 'must be at least 1').max(1_000_000, 'must be at most 1000000'),
      }),
    )
    .min(1, 'must not be empty')
    .max(100, 'must have at most 100 entries'),
  paymentToken: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
  idempotencyKey: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters').nullish(),
});
type PlaceOrderInput = z.infer<typeof placeOrderInput>;

/** The largest GraphQL Int (and PostgreSQL integer): no order may total more. */
const MAX_TOTAL_CENTS = 2 ** 31 - 1;

const PRODUCTS_QUERY = `query($r: [_Any!]!) { _entities(representations: $r) { ... on Product { id priceCents } } }`;

/** What makes two requests with one idempotency key the same request. */
function fingerprintOf(input: PlaceOrderInput): string {
  const items = input.items.map((item) => `${item.productId.toLowerCase()}x${item.quantity}`);
  return createHash('sha256')
    .update(JSON.stringify({ items, token: input.paymentToken }))
    .digest('hex');
}

const conflict = () =>
  appError(
    ErrorCode.IDEMPOTENCY_CONFLICT,
    'This idempotencyKey was already used for an order with other items or another payment token.',
  );

/**
 * `placeOrder`: validates the input (no order on error), records the order with its saga and
 * OrderPlaced in one transaction, starts the saga and waits up to `waitMs` for it to end.
 */
export function createPlaceOrder({
  store,
  runner,
  products,
  waitMs,
}: {
  store: SagaStore;
  runner: SagaRunner;
  products: SubgraphClient;
  waitMs: number;
}) {
  async function priced(input: PlaceOrderInput): Promise<OrderItemRecord[]> {
    const data = await products.request<{ _entities: ({ id: string; priceCents: number } | null)[] }>(
      PRODUCTS_QUERY,
      { r: input.items.map((item) => ({ __typename: 'Product', id: item.productId })) },
    );
    const problems: { field: string; message: string }[] = [];
    const items = input.items.map((item, index) => {
      const product = data._entities[index];
      if (!product) problems.push({ field: `items.${index}.productId`, message: 'unknown product' });
      return { productId: item.productId, quantity: item.quantity, unitPriceCents: product?.priceCents ?? 0 };
    });
    // Money is an Int of cents end to end (API.md): orders.total_cents, chargePayment's amount.
    const totalCents = items.reduce((sum, item) => sum + item.quantity * item.unitPriceCents, 0);
    if (!problems.length && totalCents > MAX_TOTAL_CENTS) {
      problems.push({ field: 'items', message: `the order total must be at most ${MAX_TOTAL_CENTS} cents` });
    }
    if (problems.length) {
      throw badUserInput(problems.map((p) => `${p.field}: ${p.message}`).join('; '), { problems });
    }
    return items;
  }

  /** `placed`: the saga this call just recorded, which the runner takes as it is. */
  async function settle(orderId: string, placed?: SagaOrder): Promise<string> {
    await Promise.race([runner.run(orderId, placed), delay(waitMs, undefined, { ref: false })]);
    return orderId;
  }

  return async (viewerOrNull: Viewer | null, rawInput: unknown): Promise<string> => {
    const viewer = requireViewer(viewerOrNull);
    const input = parseInput(placeOrderInput, rawInput);
    const fingerprint = fingerprintOf(input);
    const key = input.idempotencyKey ?? null;
    if (key) {
      const existing = await store.findByIdempotencyKey(viewer.id, key);
      if (existing) {
        if (existing.fingerprint !== fingerprint) throw conflict();
        return settle(existing.id);
      }
    }
    const items = await priced(input);
    let placed: SagaOrder;
    try {
      placed = await store.record({
        userId: viewer.id,
        items,
        paymentToken: input.paymentToken,
        idempotencyKey: key,
        fingerprint,
      });
    } catch (error) {
      if (!key || !isUniqueViolation(error)) throw error;
      // A concurrent call with the same key won: its order is this one.
      const winner = await store.findByIdempotencyKey(viewer.id, key);
      if (!winner) throw error;
      if (winner.fingerprint !== fingerprint) throw conflict();
      return settle(winner.id);
    }
    return settle(placed.id, placed);
  };
}
export type PlaceOrder = ReturnType<typeof createPlaceOrder>;
