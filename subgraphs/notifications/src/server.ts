import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import {
  consumerMigrations,
  createEventConsumer,
} from '../../../lib/messaging/consumer/createEventConsumer.ts';
import { ORDER_EVENTS_TOPIC } from '../../orders/src/saga/sagaStore.ts';
import { USER_EVENTS_TOPIC } from '../../users/src/store.ts';
import { createLogMailer, createSmtpMailer, type Mailer } from './mailer.ts';
import { createNotificationHandler, NOTIFIED_EVENT_TYPES } from './notificationsFromEvents.ts';
import { createNotificationWorker, emailTopology } from './notificationWorker.ts';
import { createNotificationDispatcher } from './createNotificationDispatcher.ts';
import { createNotificationsContext, createNotificationsResolvers } from './resolvers.ts';
import { createNotificationStore } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/**
 * Notifications: turns events into notifications (Kafka consumer), delivers them through the
 * `notifications` work queue (RabbitMQ worker with retries and DLQ) and shows them on
 * `User.notifications`. Built, not started. `mailer` replaces SMTP (tests).
 */
export function createNotificationsService(
  deps: SubgraphDeps,
  { mailer: givenMailer }: { mailer?: Mailer } = {},
): Service {
  const { config, db, logger, stream, queue } = deps;
  const store = createNotificationStore(db);
  const topology = emailTopology(config.NOTIFICATION_RETRY_DELAYS_MS);
  const mailer =
    givenMailer ??
    (config.SMTP_URL
      ? createSmtpMailer({ url: config.SMTP_URL, from: config.SMTP_FROM })
      : createLogMailer(logger));
  const dispatcher = createNotificationDispatcher({ store, queue, topology, logger });
  const consumer = createEventConsumer({
    name: 'notifications',
    topics: [USER_EVENTS_TOPIC, ORDER_EVENTS_TOPIC],
    eventTypes: NOTIFIED_EVENT_TYPES,
    stream,
    db,
    logger,
    handle: createNotificationHandler({ store, logger }),
    onApplied: () => dispatcher.notify(),
    tracer: deps.observability.tracing.tracer,
    metrics: deps.observability.metrics,
  });
  const worker = createNotificationWorker({
    queue,
    store,
    mailer,
    topology,
    prefetch: config.NOTIFICATION_PREFETCH,
    logger,
    metrics: deps.observability.metrics,
  });

  return createSubgraphService({
    name: 'notifications',
    typeDefs,
    resolvers: createNotificationsResolvers({ store }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    extraMigrations: [consumerMigrations],
    credentials: serviceCredentialsFor('notifications', deps),
    logger,
    observability: deps.observability,
    production: config.NODE_ENV === 'production',
    onStart: async () => {
      // The queue first: the consumer publishes jobs to it as soon as it starts.
      await queue.declare(topology);
      await worker.start();
      dispatcher.start();
      await consumer.start();
    },
    onStop: async () => {
      await consumer.stop();
      await dispatcher.stop();
      await worker.stop();
      mailer.close();
    },
    readiness: { eventStream: () => stream.health(), workQueue: () => queue.health() },
    createContext: createNotificationsContext,
  });
}
