import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { createGateway, type Gateway } from '../gateway/src/server.ts';
import { resolveSecrets, type Secrets } from '../lib/auth/resolveSecrets.ts';
import { subgraphPort, type Config, type SubgraphName } from '../lib/config.ts';
import { createEmbeddedPostgres, type Database } from '../lib/db/createDatabase.ts';
import { openServiceDatabase } from '../lib/db/openServiceDatabase.ts';
import type { Service } from '../lib/http/createSubgraphService.ts';
import type { SubgraphDeps } from '../lib/http/subgraphDeps.ts';
import { createDisposableStack, exitOnFatal } from '../lib/lifecycle.ts';
import type { Logger } from '../lib/logger.ts';
import { createEventStream } from '../lib/messaging/createEventStream.ts';
import { createWorkQueue } from '../lib/messaging/createWorkQueue.ts';
import type { WorkQueue } from '../lib/messaging/workQueue.ts';
import { createObservability } from '../lib/observability/createObservability.ts';
import { createAnalyticsService } from '../subgraphs/analytics/src/server.ts';
import { createNotificationsService } from '../subgraphs/notifications/src/server.ts';
import type { Mailer } from '../subgraphs/notifications/src/mailer.ts';
import type { EventStream } from '../lib/messaging/eventStream.ts';
import { createOrdersService, type OrdersSiblings } from '../subgraphs/orders/src/server.ts';
import type { PaymentProvider } from '../subgraphs/payments/src/paymentProvider.ts';
import { createPaymentsService } from '../subgraphs/payments/src/server.ts';
import { createProductsService } from '../subgraphs/products/src/server.ts';
import { createUsersService } from '../subgraphs/users/src/server.ts';

type SystemFactory = (deps: SubgraphDeps, started: Partial<Record<SubgraphName, { url: string }>>) => Service;

/**
 * In start order: orders calls users, products and payments, so it starts after them. The system
 * stops them in the reverse order (see `stopServices`), callers before what they call.
 */
function subgraphFactories(
  mailer: Mailer | undefined,
  provider: PaymentProvider | undefined,
  ordersSiblings: Partial<OrdersSiblings> = {},
): [SubgraphName, SystemFactory][] {
  return [
    ['users', (deps) => createUsersService(deps)],
    ['products', (deps) => createProductsService(deps)],
    ['payments', (deps) => createPaymentsService(deps, { provider })],
    [
      'orders',
      (deps, started) =>
        createOrdersService(deps, {
          siblings: {
            users: ordersSiblings.users ?? started.users!.url,
            products: ordersSiblings.products ?? started.products!.url,
            payments: ordersSiblings.payments ?? started.payments!.url,
          },
        }),
    ],
    ['analytics', (deps) => createAnalyticsService(deps)],
    ['notifications', (deps) => createNotificationsService(deps, { mailer })],
  ];
}

export interface SystemOptions {
  config: Config;
  logger: Logger;
  /** Port 0 everywhere (tests) instead of the configured ports. */
  ephemeralPorts?: boolean;
  /** Prefix of every service's schema, so test runs on one PostgreSQL never collide. */
  schemaPrefix?: string;
  /** Sees every SQL statement of every service (query-count tests). */
  onQuery?: (service: SubgraphName, sql: string) => void;
  /** A broker lost for good; by default the process exits non-zero for its supervisor. */
  onFatal?: (error: Error) => void;
  /** Replaces SMTP for notification emails (tests make it fail on purpose). */
  mailer?: Mailer;
  /** Replaces the built-in test card processor (tests read its captures and refunds). */
  paymentProvider?: PaymentProvider;
  /**
   * Subgraphs served by other processes, by URL: not started here, the gateway routes to them
   * (a test that kills a real orders process). They have no entry in `System.subgraphs`.
   */
  external?: Partial<Record<SubgraphName, string>>;
  /**
   * Where the orders saga calls its siblings, when not straight at them: a test's proxy that
   * cuts, holds or delays those calls while the gateway still reaches every subgraph.
   */
  ordersSiblings?: Partial<OrdersSiblings>;
}

export interface System {
  gatewayUrl: string;
  secrets: Secrets;
  /** The subgraphs started in this process (all but `external` ones). */
  subgraphs: Record<SubgraphName, { service: Service; url: string; db: Database }>;
  gateway: Gateway;
  stream: EventStream;
  queue: WorkQueue;
  /**
   * Stops one subgraph and starts a new instance of it on the same database and port, as a
   * restarted process would (tests of what survives a restart).
   */
  restart(name: SubgraphName): Promise<void>;
  /** Stops the gateway and starts a new one on the same port (clients see their sockets close). */
  restartGateway(): Promise<void>;
  /**
   * Starts one more instance of a subgraph on the same database schema and brokers, on its own
   * port, as a second replica would run (tests of what replicas share). Stopped with the system.
   */
  startReplica(name: SubgraphName): Promise<{ service: Service; url: string }>;
  stop(): Promise<void>;
}

/**
 * Everything in one process (npm start, the tests): the subgraphs on one embedded PGlite
 * (or DATABASE_URL's PostgreSQL), each in its own schema, and the gateway routing to them.
 */
export async function createSystem(options: SystemOptions): Promise<System> {
  const { config, logger } = options;
  // Databases, brokers and tracers: released once every service has stopped.
  const resources = createDisposableStack();
  // Services are not on that stack: its order would be the order they were started in, and a
  // restarted products (a test's restart()) would then stop before the gateway and orders still
  // calling it. They stop in a fixed order instead: the gateway (no new requests, in-flight ones
  // drained), then each subgraph before the ones it calls, so orders' saga runner records its
  // current step while payments and products still answer.
  const gateways: Gateway[] = [];
  const instances: { name: SubgraphName; service: Service }[] = [];
  const factories = new Map(
    subgraphFactories(options.mailer, options.paymentProvider, options.ordersSiblings).filter(
      ([name]) => !options.external?.[name],
    ),
  );
  const stopOrder = [...factories.keys()].reverse();
  let stopping: Promise<void> | undefined;
  function stopServices(): Promise<void> {
    stopping ??= (async () => {
      const errors: unknown[] = [];
      const stop = async (name: string, service: { stop(): Promise<void> }) => {
        try {
          await service.stop();
          logger.info({ stopped: name }, 'service stopped');
        } catch (error) {
          errors.push(error);
        }
      };
      for (const gateway of gateways.reverse()) await stop('gateway', gateway);
      for (const name of stopOrder) {
        for (const instance of instances.filter((i) => i.name === name)) await stop(name, instance.service);
      }
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, 'several services failed to stop');
    })();
    return stopping;
  }
  async function stopAll() {
    try {
      await stopServices();
    } finally {
      await resources.dispose();
    }
  }
  try {
    const secrets = resolveSecrets(config, logger);
    let shared: PGlite | undefined;
    if (!config.DATABASE_URL) {
      const pglite = await createEmbeddedPostgres(
        config.DATA_DIR === ':memory:' ? ':memory:' : join(config.DATA_DIR, 'embedded'),
      );
      resources.defer(() => pglite.close());
      shared = pglite;
    }
    // One stream for the whole process: the in-memory adapter connects producers and consumers
    // only within one instance.
    const stream = createEventStream(config, logger, 'event-federation');
    resources.defer(() => stream.close());
    const queue = createWorkQueue(config, logger, {
      connectionName: 'event-federation',
      onFatal: options.onFatal ?? ((error) => exitOnFatal(logger, error)),
    });
    resources.defer(() => queue.close());
    const subgraphs = {} as System['subgraphs'];
    const secretsAndBrokers = { config, secrets, stream, queue };
    async function startInstance(name: SubgraphName, port: number) {
      const db = await openServiceDatabase(config, {
        schema: `${options.schemaPrefix ?? config.DATABASE_SCHEMA_PREFIX}${name}`,
        shared,
        onQuery: options.onQuery && ((sql) => options.onQuery?.(name, sql)),
      });
      resources.defer(() => db.close());
      const observability = createObservability({ service: name, config });
      resources.defer(() => observability.shutdown());
      const service = factories.get(name)!(
        { ...secretsAndBrokers, db, logger: logger.child({ service: name }), observability },
        subgraphs,
      );
      instances.push({ name, service });
      const { url } = await service.start({ port, host: config.HOST });
      return { service, url, db };
    }
    async function startSubgraph(name: SubgraphName, port: number) {
      subgraphs[name] = await startInstance(name, port);
    }
    for (const name of factories.keys()) {
      await startSubgraph(name, options.ephemeralPorts ? 0 : subgraphPort(config, name));
    }
    let gateway: Gateway;
    async function startGateway(port: number) {
      const instance = createGateway({
        config,
        logger: logger.child({ service: 'gateway' }),
        secrets,
        subgraphUrls: {
          ...Object.fromEntries(Object.entries(subgraphs).map(([name, s]) => [name, s.url])),
          ...options.external,
        },
      });
      gateways.push(instance);
      gateway = instance;
      return instance.start({ port, host: config.HOST });
    }
    const { url: gatewayUrl, port: gatewayPort } = await startGateway(
      options.ephemeralPorts ? 0 : config.PORT,
    );
    async function restart(name: SubgraphName) {
      const current = subgraphs[name];
      await current.service.stop();
      instances.splice(
        instances.findIndex((instance) => instance.service === current.service),
        1,
      );
      await startSubgraph(name, Number(new URL(current.url).port));
    }
    async function restartGateway() {
      await gateway.stop();
      await startGateway(gatewayPort);
    }
    return {
      gatewayUrl,
      secrets,
      subgraphs,
      get gateway() {
        return gateway;
      },
      stream,
      queue,
      restart,
      restartGateway,
      startReplica: (name) => startInstance(name, 0),
      stop: stopAll,
    };
  } catch (error) {
    await stopAll().catch(() => {});
    throw error;
  }
}
