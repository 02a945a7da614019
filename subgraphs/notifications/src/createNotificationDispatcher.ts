import type { Logger } from '../../../lib/logger.ts';
import type { WorkQueue, WorkQueueTopology } from '../../../lib/messaging/workQueue.ts';
import { createPollingLoop } from '../../../lib/resilience/createPollingLoop.ts';
import type { NotificationStore } from './store.ts';

/**
 * Puts the delivery job of every recorded notification on the `notifications` exchange, then
 * marks it enqueued. A crash between the two publishes the job again on restart; the worker
 * sends nothing twice (the job id is the notification id). While RabbitMQ is away the jobs wait
 * in the table.
 */
export function createNotificationDispatcher({
  store,
  queue,
  topology,
  logger,
  batchSize = 100,
  pollIntervalMs = 200,
}: {
  store: NotificationStore;
  queue: WorkQueue;
  topology: WorkQueueTopology;
  logger: Logger;
  batchSize?: number;
  pollIntervalMs?: number;
}) {
  return createPollingLoop({
    name: 'notification dispatcher',
    logger,
    pollIntervalMs,
    step: async () => {
      const pending = await store.unenqueued(batchSize);
      for (const notification of pending) {
        await queue.publish(topology.exchange, `email.${notification.kind.toLowerCase()}`, {
          id: notification.id,
          body: JSON.stringify({ notificationId: notification.id }),
          headers: { ...notification.traceContext, kind: notification.kind },
        });
        await store.markEnqueued([notification.id]);
      }
      return pending.length === batchSize ? 0 : undefined;
    },
  });
}
