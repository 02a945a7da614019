import { z } from 'zod';
import type { Database } from '../../../../lib/db/createDatabase.ts';
import type { Observability } from '../../../../lib/observability/createObservability.ts';
import type { Logger } from '../../../../lib/logger.ts';
import {
  createEventConsumer,
  PermanentEventError,
} from '../../../../lib/messaging/consumer/createEventConsumer.ts';
import type { EventEnvelope } from '../../../../lib/messaging/envelope.ts';
import type { EventStream } from '../../../../lib/messaging/eventStream.ts';
import { ORDER_EVENTS_TOPIC, ORDER_STATUS_AFTER_EVENT } from '../../../orders/src/saga/sagaStore.ts';
import type { AnalyticsStore, OrderFact, OrderStatus } from '../store.ts';

const STATUS_OF: Readonly<Record<string, OrderStatus>> = ORDER_STATUS_AFTER_EVENT;

/** What the metrics need from an order event's data (orders' OrderEventData). */
const orderEventData = z.object({
  orderId: z.uuid(),
  userId: z.uuid(),
  totalCents: z.number().int().nonnegative(),
  items: z.array(
    z.object({
      productId: z.uuid(),
      quantity: z.number().int().positive(),
      unitPriceCents: z.number().int().nonnegative(),
    }),
  ),
  // Absent from events written before it was added: the event's own time stands in.
  placedAt: z.iso.datetime({ offset: true }).optional(),
});

/** The order fact an event states, or null for events that do not move an order's status. */
export function orderFactOf(event: EventEnvelope): OrderFact | null {
  const status = STATUS_OF[event.eventType];
  if (!status) return null;
  const data = orderEventData.safeParse(event.data);
  if (!data.success)
    throw new PermanentEventError(`${event.eventType} ${event.eventId}: ${data.error.message}`);
  const occurredAt = new Date(event.occurredAt);
  return {
    orderId: data.data.orderId,
    userId: data.data.userId,
    status,
    totalCents: data.data.totalCents,
    placedAt: data.data.placedAt ? new Date(data.data.placedAt) : occurredAt,
    occurredAt,
    version: event.version,
    items: data.data.items,
  };
}

/**
 * The analytics consumer group on `order-events`: replicas share the group name, so Kafka splits
 * the partitions between them. Each event is applied once (its id is recorded in the same
 * transaction as its effect, lib/messaging/consumer), and `onChange` runs after each commit.
 */
export function createMetricsConsumer({
  stream,
  db,
  store,
  logger,
  onChange,
  observability,
}: {
  stream: EventStream;
  db: Database;
  store: AnalyticsStore;
  logger: Logger;
  onChange: () => void;
  observability?: Observability;
}) {
  return createEventConsumer({
    name: 'analytics',
    topics: [ORDER_EVENTS_TOPIC],
    // Only the events that change an order's status make or move a fact (orderFactOf).
    eventTypes: Object.keys(STATUS_OF),
    stream,
    db,
    logger,
    handle: async (event, tx) => {
      const fact = orderFactOf(event);
      if (fact) await store.apply(tx, fact);
      // Inside the event's trace (its producer's headers): one order can be followed here too.
      logger.debug(
        { eventId: event.eventId, eventType: event.eventType, orderId: event.aggregateId },
        'order event applied',
      );
    },
    onApplied: onChange,
    tracer: observability?.tracing.tracer,
    metrics: observability?.metrics,
  });
}
