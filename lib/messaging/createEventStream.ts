import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { EventStream } from './eventStream.ts';
import { createKafkaEventStream } from './kafka/createKafkaEventStream.ts';
import { createMemoryEventStream } from './memory/createMemoryEventStream.ts';
import { eventStreamWithNamespace } from './withNamespace.ts';

/**
 * The event stream configuration asks for: Kafka with KAFKA_BROKERS, else the in-memory adapter
 * (one process only: services started separately need Kafka to see each other's events).
 */
export function createEventStream(config: Config, logger: Logger, clientId: string): EventStream {
  const stream = config.KAFKA_BROKERS
    ? createKafkaEventStream({ brokers: config.KAFKA_BROKERS.split(','), clientId, logger })
    : createMemoryEventStream();
  return eventStreamWithNamespace(stream, config.MESSAGING_NAMESPACE);
}
