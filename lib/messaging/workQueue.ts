import { MessagingError } from './messagingError.ts';

/**
 * The work-queue port: jobs published to a topic exchange, consumed from one queue with
 * acknowledgements, retried through delay queues and dead-lettered when they cannot succeed.
 * Two adapters honour the same contract (test/contracts/workQueue.contract.ts): amqplib
 * (RABBITMQ_URL) and in-memory (the embedded default).
 *
 * Contract:
 * - `declare` creates the exchange, the queue, its bindings, one delay queue per distinct
 *   retry delay and the dead-letter queue `${queue}.dlq`; it is idempotent. Publishers call it
 *   too (before their first publish), so a job published before any consumer started waits in
 *   the queue instead of vanishing.
 * - `publish` resolves only once the broker has confirmed the job (RabbitMQ: publisher
 *   confirm). It rejects with a MessagingError: retriable when the broker is away or slow (no
 *   confirm within the adapter's timeout; the job may still arrive, so consumers must be
 *   idempotent on `job.id`), not retriable when the exchange does not exist or no queue is
 *   bound for the routing key (unroutable jobs are refused, never dropped silently).
 * - Delivery is at least once. A job is acknowledged only after `handle` resolved, or after
 *   its retry or dead letter was confirmed; a process that dies in between gets it redelivered.
 * - When `handle` rejects on attempt n (1-based) with a transient error and n < maxAttempts
 *   (= retryDelaysMs.length + 1), the job comes back to the same queue (and only that queue:
 *   other bindings of the exchange do not see it again) after retryDelaysMs[n-1] with attempt
 *   n+1. Otherwise, or at once when the error is permanent (see `isPermanentJobError`), it
 *   goes to `${queue}.dlq` with the headers `x-error` (the error message), `x-attempts` and
 *   `x-failed-at` (ISO-8601) added to its own.
 * - At most `prefetch` jobs of one consumer are in `handle` at once. `stop()` stops taking
 *   jobs, waits for those in `handle` and settles them; jobs not yet handled stay queued for
 *   the next consumer.
 * - `close()` stops every consumer that way, waits for outstanding confirms and disconnects.
 *   It is idempotent; afterwards every operation rejects with a non-retriable MessagingError.
 */
export interface WorkQueueTopology {
  /** A topic exchange: routing keys are dot-separated words, `*` and `#` wildcards in bindings. */
  exchange: string;
  queue: string;
  /** Binding patterns of `queue` on `exchange`. */
  routingKeys: string[];
  /**
   * Pause before each retry, in milliseconds: a job failing on attempt n comes back after
   * retryDelaysMs[n-1]; one failing after the last delay is dead-lettered. `[]` means one
   * attempt, no retry. Production: e.g. [1_000, 2_000, 4_000, 8_000, 16_000].
   */
  retryDelaysMs: number[];
}

export interface OutgoingJob {
  /** Stable identity of the job: consumers deduplicate redeliveries on it. */
  id: string;
  /** UTF-8 payload (JSON in this project). */
  body: string;
  /** Names starting with `x-` are reserved for the brokers and the adapters. */
  headers?: Record<string, string>;
}

export interface Job {
  id: string;
  body: string;
  /** The publisher's headers; dead letters also carry x-error, x-attempts and x-failed-at. */
  headers: Record<string, string>;
  /** 1 on first delivery, n+1 after the n-th retry; a dead letter's last attempt. */
  attempt: number;
}

export interface ConsumeOptions {
  /** Jobs handed to `handle` at once; at least 1. */
  prefetch: number;
  /**
   * Resolve to acknowledge; reject to retry (or dead-letter, see the contract). It must end in
   * bounded time (its own timeout): stop(), close() and a consumer's restart after a lost
   * connection wait for the jobs in progress.
   */
  handle: (job: Job) => Promise<void>;
}

export interface WorkQueueConsumer {
  /** Stops taking jobs and resolves once the jobs in progress are settled. Idempotent. */
  stop(): Promise<void>;
}

export interface DeadLettersOptions {
  /** Most dead letters returned, oldest first (default 1000). */
  limit?: number;
}

export interface WorkQueue {
  declare(topology: WorkQueueTopology): Promise<void>;
  publish(exchange: string, routingKey: string, job: OutgoingJob): Promise<void>;
  /** Declares the topology, then consumes its queue. */
  consume(topology: WorkQueueTopology, options: ConsumeOptions): Promise<WorkQueueConsumer>;
  /**
   * A non-destructive look at `${queue}.dlq`, oldest first, for operators and tests: the dead
   * letters stay where they are. Replaying or purging them is an operator's act, not the port's.
   */
  deadLetters(topology: WorkQueueTopology, options?: DeadLettersOptions): Promise<Job[]>;
  /**
   * For readiness probes: resolves while a broker connection is up (opening one if none is),
   * rejects with a MessagingError when none can be had or the queue is closed.
   */
  health(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Thrown by a handler for a job that can never succeed (malformed payload, unknown recipient):
 * it is dead-lettered at once instead of burning its retries.
 */
export class PermanentJobError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PermanentJobError';
  }
}

/** A PermanentJobError, or a MessagingError that says retrying cannot help. */
export function isPermanentJobError(error: unknown): boolean {
  return error instanceof PermanentJobError || (error instanceof MessagingError && !error.retriable);
}

export function maxAttempts(topology: WorkQueueTopology): number {
  return topology.retryDelaysMs.length + 1;
}

export function deadLetterQueueName(topology: WorkQueueTopology): string {
  return `${topology.queue}.dlq`;
}

/** The headers a dead letter carries besides the publisher's. */
export function deadLetterHeaders(error: unknown, attempts: number, failedAt: Date): Record<string, string> {
  const message = error instanceof Error ? error.message : String(error);
  return {
    // Bounded: AMQP header tables are limited (64 KiB in amqplib) and a stack-sized message
    // would make the dead-letter publish itself fail.
    'x-error': message.length > 1_000 ? `${message.slice(0, 1_000)}…` : message,
    'x-attempts': String(attempts),
    'x-failed-at': failedAt.toISOString(),
  };
}

/** Rejects topologies the brokers would refuse or misread, before anything is declared. */
export function checkTopology(topology: WorkQueueTopology): WorkQueueTopology {
  const { exchange, queue, routingKeys, retryDelaysMs } = topology;
  if (!exchange) throw new MessagingError('a work queue needs a named exchange', { retriable: false });
  if (!queue) throw new MessagingError('a work queue needs a named queue', { retriable: false });
  if (routingKeys.length === 0) {
    throw new MessagingError(`queue ${queue} has no routing key`, { retriable: false });
  }
  for (const delay of retryDelaysMs) {
    if (!Number.isInteger(delay) || delay <= 0) {
      throw new MessagingError(`retry delay ${delay} of ${queue} is not a positive integer of ms`, {
        retriable: false,
      });
    }
  }
  return topology;
}

export function checkPrefetch(prefetch: number): number {
  // AMQP's prefetch-count is an unsigned short; 0 would mean "unlimited".
  if (!Number.isInteger(prefetch) || prefetch < 1 || prefetch > 65_535) {
    throw new MessagingError(`prefetch ${prefetch} is not an integer in 1..65535`, { retriable: false });
  }
  return prefetch;
}
