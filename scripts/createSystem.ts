import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import { createGateway, type Gateway } from '../gateway/src/server.ts';
import { resolveSecrets, type Secrets } from '../lib/auth/resolveSecrets.ts';
import { subgraphPort, type Config, type SubgraphName } from '../lib/config.ts';
import { createEmbeddedPostgres, type Database } from '../lib/db/createDatabase.ts';
import { openServiceDatabase } from '../lib/db/openServiceDatabase.ts';
import type { Service } from '../lib/http/createSubgraphService.ts';
import type { SubgraphFactory } from '../lib/http/subgraphDeps.ts';
import { createDisposableStack, exitOnFatal } from '../lib/lifecycle.ts';
import type { Logger } from '../lib/logger.ts';
import { createEventStream } from '../lib/messaging/createEventStream.ts';
import { createWorkQueue } from '../lib/messaging/createWorkQueue.ts';
import type { WorkQueue } from '../lib/messaging/workQueue.ts';
import { createNotificationsService } from '../subgraphs/notifications/src/server.ts';
import type { Mailer } from '../subgraphs/notifications/src/mailer.ts';
import type { EventStream } from '../lib/messaging/eventStream.ts';
import { createOrdersService } from '../subgraphs/orders/src/server.ts';
import { createPaymentsService } from '../subgraphs/payments/src/server.ts';
import { createProductsService } from '../subgraphs/products/src/server.ts';
import { createUsersService } from '../subgraphs/users/src/server.ts';

function subgraphFactories(mailer: Mailer | undefined): Record<SubgraphName, SubgraphFactory> {
  return {
    users: createUsersService,
    products: createProductsService,
    orders: createOrdersService,
    payments: createPaymentsService,
    notifications: (deps) => createNotificationsService(deps, { mailer }),
  };
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
}

export interface System {
  gatewayUrl: string;
  secrets: Secrets;
  subgraphs: Record<SubgraphName, { service: Service; url: string; db: Database }>;
  gateway: Gateway;
  stream: EventStream;
  queue: WorkQueue;
  stop(): Promise<void>;
}

/**
 * Everything in one process (npm start, the tests): the four subgraphs on one embedded PGlite
 * (or DATABASE_URL's PostgreSQL), each in its own schema, and the gateway routing to them.
 */
export async function createSystem(options: SystemOptions): Promise<System> {
  const { config, logger } = options;
  const resources = createDisposableStack();
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
    for (const [name, factory] of Object.entries(subgraphFactories(options.mailer)) as [
      SubgraphName,
      SubgraphFactory,
    ][]) {
      const db = await openServiceDatabase(config, {
        schema: `${options.schemaPrefix ?? ''}${name}`,
        shared,
        onQuery: options.onQuery && ((sql) => options.onQuery?.(name, sql)),
      });
      resources.defer(() => db.close());
      const service = factory({
        config,
        db,
        logger: logger.child({ service: name }),
        secrets,
        stream,
        queue,
      });
      resources.defer(() => service.stop());
      const { url } = await service.start({
        port: options.ephemeralPorts ? 0 : subgraphPort(config, name),
        host: config.HOST,
      });
      subgraphs[name] = { service, url, db };
    }
    const gateway = createGateway({
      config,
      logger: logger.child({ service: 'gateway' }),
      secrets,
      subgraphUrls: Object.fromEntries(Object.entries(subgraphs).map(([name, s]) => [name, s.url])),
    });
    resources.defer(() => gateway.stop());
    const { url: gatewayUrl } = await gateway.start({
      port: options.ephemeralPorts ? 0 : config.PORT,
      host: config.HOST,
    });
    return { gatewayUrl, secrets, subgraphs, gateway, stream, queue, stop: () => resources.dispose() };
  } catch (error) {
    await resources.dispose().catch(() => {});
    throw error;
  }
}
