import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { DEMO_ORDERS } from '../../../lib/demo.ts';
import { isUniqueViolation } from '../../../lib/db/createDatabase.ts';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import { createOrdersContext, createOrdersResolvers } from './resolvers.ts';
import { createOrderStore } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

const SAGA_STEPS = ['VALIDATE_USER', 'RESERVE_STOCK', 'CHARGE_PAYMENT', 'CONFIRM_ORDER'] as const;

/** Orders: orders, their items and their saga's step log. Built, not started. */
export function createOrdersService(deps: SubgraphDeps): Service {
  const { config, db, logger } = deps;
  const store = createOrderStore(db);
  const production = config.NODE_ENV === 'production';

  /** The demo admin's completed orders (lib/demo.ts), so the federated demo query has data. */
  async function seedDemoOrders() {
    if (production) return;
    let seeded = 0;
    for (const order of DEMO_ORDERS) {
      if (await store.exists(order.id)) continue;
      const at = new Date();
      try {
        await store.create({
          id: order.id,
          userId: order.userId,
          status: 'CONFIRMED',
          sagaState: 'COMPLETED',
          items: order.items,
          steps: SAGA_STEPS.map((name) => ({
            name,
            status: 'SUCCEEDED',
            attempts: 1,
            error: null,
            startedAt: at,
            finishedAt: at,
          })),
        });
        seeded += 1;
      } catch (error) {
        if (!isUniqueViolation(error)) throw error; // a replica seeded it first
      }
    }
    if (seeded) logger.info({ count: seeded }, 'seeded demo orders');
  }

  return createSubgraphService({
    name: 'orders',
    typeDefs,
    resolvers: createOrdersResolvers({ store }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    credentials: serviceCredentialsFor('orders', deps),
    logger,
    production,
    seed: seedDemoOrders,
    createContext: (caller) => createOrdersContext(store, caller),
  });
}
