import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { DEMO_ORDERS, orderTotalCents } from '../../../lib/demo.ts';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import {
  createPaymentProcessing,
  PRODUCTION_PAYMENT_TIMING,
  type PaymentTiming,
} from './createPaymentProcessing.ts';
import { createTestPaymentProvider } from './createTestPaymentProvider.ts';
import type { PaymentProvider } from './paymentProvider.ts';
import { createPaymentsContext, createPaymentsResolvers } from './resolvers.ts';
import { createPaymentStore, DuplicatePaymentError } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/**
 * Payments: charges of orders through a card processor. Built, not started. `provider` plugs in a
 * real processor (default: the built-in test mode of API.md's tokens); `timing` shortens the
 * provider timeouts and backoffs (tests).
 */
export function createPaymentsService(
  deps: SubgraphDeps,
  {
    provider,
    timing = PRODUCTION_PAYMENT_TIMING,
  }: { provider?: PaymentProvider; timing?: PaymentTiming } = {},
): Service {
  const { config, db, logger } = deps;
  const store = createPaymentStore(db);
  const processing = createPaymentProcessing({
    store,
    provider: provider ?? createTestPaymentProvider({ replyTimeoutMs: timing.replyTimeoutMs }),
    logger,
    timing,
  });
  const production = config.NODE_ENV === 'production';

  /** The captured payments of the demo orders (lib/demo.ts). */
  async function seedDemoPayments() {
    if (production) return;
    const existing = await store.findByOrderIds(DEMO_ORDERS.map((order) => order.id));
    for (const [index, order] of DEMO_ORDERS.entries()) {
      if (existing[index]) continue;
      try {
        await store.create({
          id: order.paymentId,
          orderId: order.id,
          userId: order.userId,
          amountCents: orderTotalCents(order.items),
          status: 'CAPTURED',
          attempts: 1,
          refundedCents: 0,
        });
      } catch (error) {
        if (!(error instanceof DuplicatePaymentError)) throw error; // a replica seeded it first
      }
    }
  }

  return createSubgraphService({
    name: 'payments',
    typeDefs,
    resolvers: createPaymentsResolvers({ processing }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    credentials: serviceCredentialsFor('payments', deps),
    logger,
    observability: deps.observability,
    production,
    seed: seedDemoPayments,
    createContext: (caller) => createPaymentsContext(store, caller),
  });
}
