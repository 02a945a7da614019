import { context } from '@opentelemetry/api';
import { z } from 'zod';
import { extractTraceContext } from '../../../lib/observability/createTracing.ts';
import type { Metrics } from '../../../lib/observability/createMetrics.ts';
import type { Logger } from '../../../lib/logger.ts';
import {
  isPermanentJobError,
  maxAttempts,
  PermanentJobError,
  type Job,
  type WorkQueue,
  type WorkQueueConsumer,
  type WorkQueueTopology,
} from '../../../lib/messaging/workQueue.ts';
import type { Mailer } from './mailer.ts';
import type { NotificationStore } from './store.ts';

/** API.md: exchange `notifications` (topic), queue `notifications.email`, DLQ `notifications.email.dlq`. */
export function emailTopology(retryDelaysMs: number[]): WorkQueueTopology {
  return { exchange: 'notifications', queue: 'notifications.email', routingKeys: ['email.#'], retryDelaysMs };
}

const jobBody = z.object({ notificationId: z.uuid() });

/**
 * Delivers notification emails from the queue. A job names a notification; the notification's
 * row decides: SENT, or claimed by another worker, means a duplicate job and nothing is sent
 * again (the holder's job owns the retries); a failure is recorded, and the queue retries the
 * job, then dead-letters it when the status becomes FAILED.
 */
export function createNotificationWorker({
  queue,
  store,
  mailer,
  topology,
  prefetch,
  logger,
  claimMs = 60_000,
  metrics,
}: {
  queue: WorkQueue;
  store: NotificationStore;
  mailer: Mailer;
  topology: WorkQueueTopology;
  prefetch: number;
  logger: Logger;
  /** How long one attempt may hold a notification before a duplicate job may take it. */
  claimMs?: number;
  /** `notification_deliveries_total` by outcome: sent, retried, dead_lettered. */
  metrics?: Metrics;
}) {
  const deliveries = metrics?.counter({
    name: 'notification_deliveries_total',
    help: 'Notification email attempts by outcome (sent, retried through RabbitMQ, dead_lettered)',
    labelNames: ['kind', 'outcome'],
  });
  let consumer: WorkQueueConsumer | undefined;
  const lastAttempt = maxAttempts(topology);

  async function deliver(job: Job) {
    const parsed = jobBody.safeParse(JSON.parse(job.body));
    if (!parsed.success) throw new PermanentJobError(`malformed notification job ${job.id}`);
    const { notificationId } = parsed.data;
    const claim = await store.claim(notificationId, claimMs);
    if (claim.outcome === 'sent' || claim.outcome === 'busy') return;
    // Jobs are enqueued only for committed notifications (the dispatcher), so this never heals.
    if (claim.outcome === 'missing')
      throw new PermanentJobError(`notification ${notificationId} does not exist`);
    const { notification } = claim;
    try {
      await mailer.send({
        to: notification.recipient,
        subject: notification.subject,
        text: notification.body,
      });
    } catch (error) {
      const final = job.attempt >= lastAttempt || isPermanentJobError(error);
      await store.markFailed(notificationId, error instanceof Error ? error.message : String(error), final);
      logger.warn(
        { err: error, notificationId, attempt: job.attempt, final },
        'notification delivery failed',
      );
      deliveries?.inc({ kind: notification.kind, outcome: final ? 'dead_lettered' : 'retried' });
      throw error;
    }
    await store.markSent(notificationId);
    deliveries?.inc({ kind: notification.kind, outcome: 'sent' });
    logger.info({ notificationId, kind: notification.kind, attempt: job.attempt }, 'notification sent');
  }

  return {
    async start() {
      consumer = await queue.consume(topology, {
        prefetch,
        // Each delivery runs inside the trace of the order event that caused it (job headers).
        handle: (job) => context.with(extractTraceContext(job.headers), () => deliver(job)),
      });
    },
    async stop() {
      await consumer?.stop();
      consumer = undefined;
    },
  };
}
