import type { Secrets } from '../auth/resolveSecrets.ts';
import { createServiceCredentials } from '../auth/tokens.ts';
import type { Config } from '../config.ts';
import type { Database } from '../db/createDatabase.ts';
import type { Logger } from '../logger.ts';
import type { EventStream } from '../messaging/eventStream.ts';
import type { WorkQueue } from '../messaging/workQueue.ts';
import type { Observability } from '../observability/createObservability.ts';
import { createOutboxRelay } from '../outbox/createOutboxRelay.ts';
import type { Service } from './createSubgraphService.ts';

/** What every subgraph factory is given: nothing is imported as a singleton. */
export interface SubgraphDeps {
  config: Config;
  db: Database;
  logger: Logger;
  secrets: Secrets;
  /** The event stream (Kafka, or in memory when one process runs everything). */
  stream: EventStream;
  /** The work queue (RabbitMQ, or in memory when one process runs everything). */
  queue: WorkQueue;
  /** The service's metrics registry and tracer. */
  observability: Observability;
}

export type SubgraphFactory = (deps: SubgraphDeps) => Service;

/** The credential verifier/signer of a service named `service`. */
export function serviceCredentialsFor(
  service: string,
  { config, secrets }: Pick<SubgraphDeps, 'config' | 'secrets'>,
) {
  return createServiceCredentials({
    secret: secrets.serviceSecret,
    ttlSeconds: config.SERVICE_CREDENTIAL_TTL_SECONDS,
    service,
  });
}

/**
 * The outbox relay of a service that appends events (users, orders). Wake it after every commit
 * that appends events: the poll (OUTBOX_POLL_INTERVAL_MS) then only finds other replicas' events.
 */
export function outboxRelayFor({ config, db, stream, logger, observability }: SubgraphDeps) {
  return createOutboxRelay({
    db,
    stream,
    logger,
    metrics: observability.metrics,
    pollIntervalMs: config.OUTBOX_POLL_INTERVAL_MS,
  });
}
