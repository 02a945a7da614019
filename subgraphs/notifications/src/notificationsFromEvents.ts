import { z } from 'zod';
import type { Queryable } from '../../../lib/db/createDatabase.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { EventEnvelope } from '../../../lib/messaging/envelope.ts';
import { PermanentEventError } from '../../../lib/messaging/consumer/createEventConsumer.ts';
import type { NewNotification, NotificationStore } from './store.ts';

const userSignedUp = z.object({ userId: z.uuid(), email: z.email(), name: z.string() });
/**
 * The fields of order-events that a notification needs. The saga puts the email in them once
 * VALIDATE_USER has read it; an order cancelled before that carries none (see the handler).
 */
const orderEnded = z.object({
  orderId: z.uuid(),
  userId: z.uuid(),
  email: z.email().nullish(),
  totalCents: z.number().int(),
  reason: z.string().nullish(),
});

const money = (cents: number) => `${(cents / 100).toFixed(2)}`;

/** The events that may call for a notification (or teach a recipient): the consumer skips the rest. */
export const NOTIFIED_EVENT_TYPES: readonly string[] = ['UserSignedUp', 'OrderConfirmed', 'OrderCancelled'];

/**
 * The notification an event calls for, if any. `recipient` is the order's email when its event
 * carries none (null: a user nobody can write to).
 */
export async function notificationFor(
  event: EventEnvelope,
  recipientOf: (userId: string) => Promise<string | null> = () => Promise.resolve(null),
): Promise<NewNotification | null> {
  switch (event.eventType) {
    case 'UserSignedUp': {
      const data = userSignedUp.safeParse(event.data);
      if (!data.success)
        throw new PermanentEventError(`UserSignedUp ${event.eventId}: ${data.error.message}`);
      return {
        id: event.eventId,
        userId: data.data.userId,
        kind: 'WELCOME',
        recipient: data.data.email,
        subject: `Welcome, ${data.data.name}!`,
        body: `Hello ${data.data.name},\n\nyour account is ready. Happy shopping!\n`,
      };
    }
    case 'OrderConfirmed':
    case 'OrderCancelled': {
      const data = orderEnded.safeParse(event.data);
      if (!data.success)
        throw new PermanentEventError(`${event.eventType} ${event.eventId}: ${data.error.message}`);
      const { orderId, userId, totalCents, reason } = data.data;
      const email = data.data.email ?? (await recipientOf(userId));
      if (!email) return null;
      const confirmed = event.eventType === 'OrderConfirmed';
      return {
        id: event.eventId,
        userId,
        kind: confirmed ? 'ORDER_CONFIRMED' : 'ORDER_CANCELLED',
        recipient: email,
        subject: confirmed ? `Your order ${orderId} is confirmed` : `Your order ${orderId} was cancelled`,
        body: confirmed
          ? `Hello,\n\nyour order ${orderId} (total ${money(totalCents)}) is confirmed.\n`
          : `Hello,\n\nyour order ${orderId} was cancelled: ${reason ?? 'no reason given'}.\nNothing was charged, or the charge was refunded.\n`,
      };
    }
    default:
      return null;
  }
}

/**
 * The event handler of the notifications consumer: records the notification in the consumer's
 * transaction. Its delivery job is enqueued afterwards by the dispatcher (the row is its own
 * outbox), so a job never exists for a notification that was not committed.
 */
export function createNotificationHandler({ store, logger }: { store: NotificationStore; logger: Logger }) {
  return async (event: EventEnvelope, tx: Queryable) => {
    if (event.eventType === 'UserSignedUp') {
      const data = userSignedUp.safeParse(event.data);
      if (data.success) await store.rememberRecipient(tx, data.data.userId, data.data.email);
    }
    const notification = await notificationFor(event, (userId) => store.recipientOf(tx, userId));
    if (notification) {
      await store.add(tx, notification);
    } else if (event.eventType === 'OrderConfirmed' || event.eventType === 'OrderCancelled') {
      // No email on the event and no sign-up seen for the user: there is nobody to notify. A
      // dead letter would be noise: retrying cannot make this user exist.
      logger.info({ eventId: event.eventId }, 'order notification skipped: no known recipient');
    }
  };
}
