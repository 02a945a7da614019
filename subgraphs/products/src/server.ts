import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { DEMO_PRODUCTS } from '../../../lib/demo.ts';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import { createReservationSweeper } from './createReservationSweeper.ts';
import { createReservationStore } from './reservationStore.ts';
import { createProductsContext, createProductsResolvers } from './resolvers.ts';
import { createProductStore, DuplicateSkuError } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

export interface ProductsServiceOptions {
  /** How often expired reservations are swept (tests shorten it). */
  reservationSweepIntervalMs?: number;
}

/** Products: the catalogue, its stock and the reservations held on it. Built, not started. */
export function createProductsService(deps: SubgraphDeps, options: ProductsServiceOptions = {}): Service {
  const { config, db, logger } = deps;
  const store = createProductStore(db);
  const reservations = createReservationStore(db);
  const sweeper = createReservationSweeper({
    reservations,
    logger,
    intervalMs: options.reservationSweepIntervalMs,
  });
  const production = config.NODE_ENV === 'production';

  async function seedDemoProducts() {
    if (production || !(await store.isEmpty())) return;
    for (const product of DEMO_PRODUCTS) {
      try {
        await store.create(product);
      } catch (error) {
        if (!(error instanceof DuplicateSkuError)) throw error; // a replica seeded it first
      }
    }
    logger.info({ count: DEMO_PRODUCTS.length }, 'seeded demo products');
  }

  return createSubgraphService({
    name: 'products',
    typeDefs,
    resolvers: createProductsResolvers({ store, reservations }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    credentials: serviceCredentialsFor('products', deps),
    logger,
    observability: deps.observability,
    production,
    seed: seedDemoProducts,
    onStart: () => sweeper.start(),
    onStop: () => sweeper.stop(),
    createContext: (caller) => createProductsContext(store, caller),
  });
}
