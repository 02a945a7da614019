import { z } from 'zod';
import type { Queryable } from '../../../lib/db/createDatabase.ts';
import type { EventEnvelope } from '../../../lib/messaging/envelope.ts';
import { PermanentEventError } from '../../../lib/messaging/consumer/createEventConsumer.ts';
import type { NewNotification, NotificationStore } from './store.ts';

const userSignedUp = z.object({ userId: z.uuid(), email: z.email(), name: z.string() });

/** The notification an event calls for, if any. Order notifications come with the saga. */
export function notificationFor(event: EventEnvelope): NewNotification | null {
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
    default:
      return null;
  }
}

/**
 * The event handler of the notifications consumer: records the notification in the consumer's
 * transaction. Its delivery job is enqueued afterwards by the dispatcher (the row is its own
 * outbox), so a job never exists for a notification that was not committed.
 */
export function createNotificationHandler({ store }: { store: NotificationStore }) {
  return async (event: EventEnvelope, tx: Queryable) => {
    const notification = notificationFor(event);
    if (notification) await store.add(tx, notification);
  };
}
