import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import { consumerMigrations } from '../../../lib/messaging/consumer/createEventConsumer.ts';
import { createMetricsConsumer } from './consumer/createMetricsConsumer.ts';
import { createMetricsFeed } from './createMetricsFeed.ts';
import { createAnalyticsContext, createAnalyticsResolvers } from './resolvers.ts';
import { createAnalyticsStore } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/**
 * Analytics: sales metrics from `order-events` (Kafka consumer group `analytics`, one row per
 * order in its own database), `Query.salesMetrics` and `Subscription.salesMetricsUpdated`.
 * Any number of replicas may share the database and the group. Built, not started.
 */
export function createAnalyticsService(deps: SubgraphDeps): Service {
  const { config, db, logger, stream } = deps;
  const store = createAnalyticsStore(db);
  const feed = createMetricsFeed({ store, logger });
  const consumer = createMetricsConsumer({
    stream,
    db,
    store,
    logger,
    onChange: feed.changed,
    observability: deps.observability,
  });

  return createSubgraphService({
    name: 'analytics',
    typeDefs,
    resolvers: createAnalyticsResolvers({ store, feed }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    extraMigrations: [consumerMigrations],
    credentials: serviceCredentialsFor('analytics', deps),
    logger,
    observability: deps.observability,
    readiness: { eventStream: () => stream.health() },
    production: config.NODE_ENV === 'production',
    onStart: async () => {
      feed.start();
      await consumer.start();
    },
    onStop: async () => {
      await consumer.stop();
      await feed.stop();
    },
    createContext: createAnalyticsContext,
  });
}
