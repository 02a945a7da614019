import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { createEventHub } from '../../../lib/graphql/createEventHub.ts';
import type { Logger } from '../../../lib/logger.ts';
import { eventEnvelopeSchema } from '../../../lib/messaging/envelope.ts';
import type { EventStream, StreamMessage, StreamSubscription } from '../../../lib/messaging/eventStream.ts';
import { ORDER_EVENTS_TOPIC, ORDER_STATUS_AFTER_EVENT } from './saga/sagaStore.ts';
import type { OrderStatus } from './store.ts';

/** A change of an order's status, as the event that announced it tells it. */
export interface OrderStatusChange {
  orderId: string;
  userId: string;
  status: OrderStatus;
  failureReason: string | null;
  occurredAt: Date;
}

const STATUS_OF: Readonly<Record<string, OrderStatus>> = ORDER_STATUS_AFTER_EVENT;

const statusEventData = z.object({
  orderId: z.uuid(),
  userId: z.uuid(),
  reason: z.string().nullish(),
});

/** Orders whose last delivered version is remembered, to drop duplicates; the oldest go first. */
const REMEMBERED_ORDERS = 10_000;

/**
 * The source of `Subscription.orderStatusChanged` in one orders replica.
 *
 * The saga of an order runs in whichever replica took its placeOrder, but its subscribers may be
 * connected to any replica. Every transition is already on `order-events` (the outbox), so each
 * replica reads that topic in a consumer group of its own (a new id per start, from the latest
 * offset): Kafka then broadcasts every event to every replica instead of splitting the partitions.
 * Events of one order share a partition, so they arrive in order; an event redelivered or
 * replayed (a version not above the last one delivered for its order) is dropped.
 */
export function createOrderStatusFeed({ stream, logger }: { stream: EventStream; logger: Logger }) {
  const hub = createEventHub<OrderStatusChange>();
  const lastVersion = new Map<string, number>();
  let subscription: StreamSubscription | undefined;

  async function handle(message: StreamMessage): Promise<void> {
    let change: OrderStatusChange | undefined;
    let version = 0;
    try {
      const event = eventEnvelopeSchema.parse(JSON.parse(message.value));
      const status = STATUS_OF[event.eventType];
      if (!status) return;
      const data = statusEventData.parse(event.data);
      version = event.version;
      change = {
        orderId: data.orderId,
        userId: data.userId,
        status,
        failureReason: data.reason ?? null,
        occurredAt: new Date(event.occurredAt),
      };
    } catch (error) {
      // Broadcast only: the analytics and notifications consumers dead-letter malformed events.
      logger.warn({ err: error, offset: message.offset }, 'order event not understood; no status pushed');
      return;
    }
    if ((lastVersion.get(change.orderId) ?? 0) >= version) return;
    lastVersion.delete(change.orderId);
    lastVersion.set(change.orderId, version);
    if (lastVersion.size > REMEMBERED_ORDERS) lastVersion.delete(lastVersion.keys().next().value!);
    hub.publish(change);
  }

  return {
    async start(): Promise<void> {
      subscription ??= await stream.subscribe({
        groupId: `orders-status-${randomUUID()}`,
        topics: [ORDER_EVENTS_TOPIC],
        fromBeginning: false,
        handle,
      });
    },

    /** Status changes from now on that `accept` lets through. */
    subscribe(accept: (change: OrderStatusChange) => boolean): AsyncIterableIterator<OrderStatusChange> {
      return hub.subscribe(accept);
    },

    /** Ends every subscription and leaves the topic. Idempotent. */
    async stop(): Promise<void> {
      hub.close();
      await subscription?.stop();
      subscription = undefined;
    },
  };
}
export type OrderStatusFeed = ReturnType<typeof createOrderStatusFeed>;
