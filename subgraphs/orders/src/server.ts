import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { DEMO_ORDERS } from '../../../lib/demo.ts';
import { isUniqueViolation } from '../../../lib/db/createDatabase.ts';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { outboxRelayFor, serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import type { Config } from '../../../lib/config.ts';
import { subgraphPort, subgraphUrlOverride } from '../../../lib/config.ts';
import { outboxMigrations } from '../../../lib/outbox/appendEvent.ts';
import { createOrderStatusFeed } from './createOrderStatusFeed.ts';
import { createSagaRunner, DEFAULT_SAGA_TIMING } from './saga/createSagaRunner.ts';
import { createSubgraphClient } from './saga/createSubgraphClient.ts';
import { createPlaceOrder } from './saga/placeOrder.ts';
import { createSagaStore, SAGA_STEPS } from './saga/sagaStore.ts';
import { createOrdersContext, createOrdersResolvers } from './resolvers.ts';
import { createOrderStore } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** The sibling subgraphs the saga calls. */
export type OrdersSiblings = Record<'users' | 'products' | 'payments', string>;

/** Where the siblings are when orders runs alone: SUBGRAPH_<NAME>_URL, else their configured port. */
export function siblingUrlsFromConfig(config: Config): OrdersSiblings {
  const urlOf = (name: keyof OrdersSiblings) =>
    subgraphUrlOverride(config, name) ?? `http://127.0.0.1:${subgraphPort(config, name)}/graphql`;
  return { users: urlOf('users'), products: urlOf('products'), payments: urlOf('payments') };
}

/**
 * Orders: orders, their items, the order saga (./saga) and its step log. Built, not started.
 * `siblings` are the URLs of the subgraphs the saga calls (from config when not given).
 */
export function createOrdersService(
  deps: SubgraphDeps,
  { siblings = siblingUrlsFromConfig(deps.config) }: { siblings?: OrdersSiblings } = {},
): Service {
  const { config, db, logger, stream } = deps;
  const store = createOrderStore(db);
  const production = config.NODE_ENV === 'production';
  const credentials = serviceCredentialsFor('orders', deps);
  // Woken by every commit that appends events here; the poll only finds other replicas' events.
  const relay = outboxRelayFor(deps);
  // A new owner per instance: a restarted process must wait out its predecessor's leases too.
  const sagaStore = createSagaStore(db, { owner: randomUUID(), leaseMs: config.ORDER_SAGA_LEASE_MS });
  const statusFeed = createOrderStatusFeed({ stream, logger });
  const abort = new AbortController();
  // The same breaker settings as the gateway's in front of the same subgraphs.
  const clientFor = (name: keyof OrdersSiblings) =>
    createSubgraphClient({
      name,
      url: siblings[name],
      credentials,
      signal: abort.signal,
      breakerThreshold: config.SUBGRAPH_BREAKER_THRESHOLD,
      halfOpenAfterMs: config.SUBGRAPH_BREAKER_HALF_OPEN_AFTER_MS,
    });
  const clients = {
    users: clientFor('users'),
    products: clientFor('products'),
    payments: clientFor('payments'),
  };
  // A write that appended events wakes the relay up rather than wait for its poll.
  const notifyingSagaStore = {
    ...sagaStore,
    apply: async (...args: Parameters<typeof sagaStore.apply>) => {
      const order = await sagaStore.apply(...args);
      if (args[1].events?.length) relay.notify();
      return order;
    },
    record: async (input: Parameters<typeof sagaStore.record>[0]) => {
      const order = await sagaStore.record(input);
      relay.notify();
      return order;
    },
  };
  const runner = createSagaRunner({
    store: notifyingSagaStore,
    clients,
    logger,
    abort,
    leaseMs: config.ORDER_SAGA_LEASE_MS,
    metrics: deps.observability.metrics,
    timing: {
      stepDeadlineMs: config.ORDER_SAGA_STEP_DEADLINE_MS,
      maxBackoffMs: config.ORDER_SAGA_RETRY_MAX_BACKOFF_MS,
      initialBackoffMs: Math.min(
        DEFAULT_SAGA_TIMING.initialBackoffMs,
        config.ORDER_SAGA_RETRY_MAX_BACKOFF_MS,
      ),
      chargeTimeoutMs: config.ORDER_SAGA_CHARGE_TIMEOUT_MS,
      reservationTtlSeconds: config.ORDER_RESERVATION_TTL_SECONDS,
    },
  });
  const placeOrder = createPlaceOrder({
    store: notifyingSagaStore,
    runner,
    products: clients.products,
    waitMs: config.ORDER_SAGA_WAIT_MS,
  });

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
    resolvers: createOrdersResolvers({ store, placeOrder, statusFeed }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    extraMigrations: [outboxMigrations],
    credentials,
    logger,
    observability: deps.observability,
    production,
    seed: seedDemoOrders,
    onStart: async () => {
      await statusFeed.start();
      relay.start();
      await runner.start();
    },
    onStop: async () => {
      // The runner first: its last transitions go to the outbox, which the relay then publishes.
      await runner.stop();
      await Promise.all(Object.values(clients).map((client) => client.close()));
      await relay.stop();
      await statusFeed.stop();
    },
    readiness: { eventStream: () => stream.health() },
    createContext: (caller) => createOrdersContext(store, caller),
  });
}
