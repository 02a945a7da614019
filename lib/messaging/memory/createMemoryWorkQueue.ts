import type { Logger } from '../../logger.ts';
import { MessagingError } from '../messagingError.ts';
import {
  checkPrefetch,
  checkTopology,
  deadLetterHeaders,
  deadLetterQueueName,
  isPermanentJobError,
  maxAttempts,
  type ConsumeOptions,
  type Job,
  type OutgoingJob,
  type WorkQueue,
  type WorkQueueConsumer,
  type WorkQueueTopology,
} from '../workQueue.ts';

export interface MemoryWorkQueueOptions {
  logger: Logger;
  /** Timers of the retry delays; tests may pass fakes. Defaults to the global ones. */
  setTimeout?: (callback: () => void, ms: number) => unknown;
  clearTimeout?: (handle: unknown) => void;
}

interface MemoryQueue {
  jobs: Job[];
  consumers: MemoryConsumer[];
  /** Round-robin position, so several consumers of one queue share its jobs. */
  next: number;
}

interface MemoryConsumer {
  topology: WorkQueueTopology;
  prefetch: number;
  handle: (job: Job) => Promise<void>;
  inFlight: Set<Promise<void>>;
  stopping?: Promise<void>;
}

/**
 * The work queue of the embedded default: a broker in this process's memory that honours the
 * port's contract (lib/messaging/workQueue.ts) with real timers for the retry delays. Jobs do
 * not survive the process; that is the price of running without RabbitMQ.
 */
export function createMemoryWorkQueue(options: MemoryWorkQueueOptions): WorkQueue {
  const { logger } = options;
  const setTimer = options.setTimeout ?? ((callback, ms) => setTimeout(callback, ms));
  const clearTimer =
    options.clearTimeout ?? ((handle) => clearTimeout(handle as ReturnType<typeof setTimeout>));
  /** exchange → queue → binding patterns */
  const exchanges = new Map<string, Map<string, Set<string>>>();
  const queues = new Map<string, MemoryQueue>();
  const consumers = new Set<MemoryConsumer>();
  const retryTimers = new Set<unknown>();
  let closing: Promise<void> | undefined;

  function ensureOpen(): void {
    if (closing) throw new MessagingError('the work queue is closed', { retriable: false });
  }

  function queueNamed(name: string): MemoryQueue {
    let queue = queues.get(name);
    if (!queue) {
      queue = { jobs: [], consumers: [], next: 0 };
      queues.set(name, queue);
    }
    return queue;
  }

  function enqueue(queueName: string, job: Job): void {
    const queue = queueNamed(queueName);
    queue.jobs.push(job);
    dispatch(queue);
  }

  /** Hands queued jobs to consumers with a free prefetch slot, in turn. */
  function dispatch(queue: MemoryQueue): void {
    while (queue.jobs.length > 0) {
      const count = queue.consumers.length;
      let chosen: MemoryConsumer | undefined;
      for (let i = 0; i < count && !chosen; i++) {
        const candidate = queue.consumers[(queue.next + i) % count];
        if (candidate && candidate.inFlight.size < candidate.prefetch) {
          chosen = candidate;
          queue.next = (queue.next + i + 1) % count;
        }
      }
      if (!chosen) return;
      const job = queue.jobs.shift();
      if (job) run(chosen, queue, job);
    }
  }

  function run(consumer: MemoryConsumer, queue: MemoryQueue, job: Job): void {
    const task = (async () => {
      // Like a broker: the handler never runs inside the publisher's call stack.
      await Promise.resolve();
      try {
        // A copy, so a handler mutating its job cannot change what a retry carries.
        await consumer.handle({ ...job, headers: { ...job.headers } });
      } catch (error) {
        settleFailure(consumer.topology, job, error);
      }
    })().then(() => {
      consumer.inFlight.delete(task);
      dispatch(queue);
    });
    consumer.inFlight.add(task);
  }

  function settleFailure(topology: WorkQueueTopology, job: Job, error: unknown): void {
    const delayMs = topology.retryDelaysMs[job.attempt - 1];
    if (!isPermanentJobError(error) && job.attempt < maxAttempts(topology) && delayMs !== undefined) {
      logger.warn({ err: error, jobId: job.id, attempt: job.attempt, delayMs }, 'job failed: retrying');
      // The retry goes back to this queue only, like RabbitMQ's delay queues: the other
      // bindings of the exchange already had their copy.
      const timer = setTimer(() => {
        retryTimers.delete(timer);
        if (!closing) enqueue(topology.queue, { ...job, attempt: job.attempt + 1 });
      }, delayMs);
      retryTimers.add(timer);
      return;
    }
    logger.error({ err: error, jobId: job.id, attempt: job.attempt }, 'job failed: dead-lettered');
    enqueue(deadLetterQueueName(topology), {
      ...job,
      headers: { ...job.headers, ...deadLetterHeaders(error, job.attempt, new Date()) },
    });
  }

  function stopConsumer(consumer: MemoryConsumer): Promise<void> {
    consumer.stopping ??= (async () => {
      const queue = queues.get(consumer.topology.queue);
      if (queue) queue.consumers = queue.consumers.filter((c) => c !== consumer);
      while (consumer.inFlight.size > 0) await Promise.all(consumer.inFlight);
      consumers.delete(consumer);
    })();
    return consumer.stopping;
  }

  async function declare(topology: WorkQueueTopology): Promise<void> {
    ensureOpen();
    const { exchange, queue, routingKeys } = checkTopology(topology);
    let bindings = exchanges.get(exchange);
    if (!bindings) {
      bindings = new Map();
      exchanges.set(exchange, bindings);
    }
    let patterns = bindings.get(queue);
    if (!patterns) {
      patterns = new Set();
      bindings.set(queue, patterns);
    }
    for (const key of routingKeys) patterns.add(key);
    queueNamed(queue);
    queueNamed(deadLetterQueueName(topology));
    await Promise.resolve();
  }

  return {
    declare,

    async publish(exchange, routingKey, job: OutgoingJob) {
      ensureOpen();
      const bindings = exchanges.get(exchange);
      if (!bindings) {
        throw new MessagingError(`exchange ${exchange} does not exist: declare its topology first`, {
          retriable: false,
        });
      }
      const targets = [...bindings].filter(([, patterns]) =>
        [...patterns].some((pattern) => topicMatches(pattern, routingKey)),
      );
      if (targets.length === 0) {
        throw new MessagingError(
          `job ${job.id} is unroutable: no queue bound to ${exchange} for ${routingKey}`,
          {
            retriable: false,
          },
        );
      }
      for (const [queue] of targets) {
        enqueue(queue, { id: job.id, body: job.body, headers: { ...job.headers }, attempt: 1 });
      }
      await Promise.resolve();
    },

    async consume(
      topology: WorkQueueTopology,
      { prefetch, handle }: ConsumeOptions,
    ): Promise<WorkQueueConsumer> {
      checkPrefetch(prefetch);
      await declare(topology);
      const consumer: MemoryConsumer = {
        topology,
        prefetch,
        handle,
        inFlight: new Set(),
      };
      consumers.add(consumer);
      const queue = queueNamed(topology.queue);
      queue.consumers.push(consumer);
      dispatch(queue);
      return { stop: () => stopConsumer(consumer) };
    },

    async deadLetters(topology, { limit = 1_000 } = {}) {
      ensureOpen();
      const queue = queues.get(deadLetterQueueName(topology));
      if (!queue) {
        throw new MessagingError(`queue ${deadLetterQueueName(topology)} does not exist`, {
          retriable: false,
        });
      }
      await Promise.resolve();
      return queue.jobs.slice(0, limit).map((job) => ({ ...job, headers: { ...job.headers } }));
    },

    async health() {
      ensureOpen();
    },

    close() {
      closing ??= (async () => {
        await Promise.all([...consumers].map(stopConsumer));
        // After the consumers: a job failing while they stop may still schedule a retry.
        for (const timer of retryTimers) clearTimer(timer);
        retryTimers.clear();
      })();
      return closing;
    },
  };
}

/** AMQP topic matching: words split on '.', `*` matches one word, `#` zero or more. */
function topicMatches(pattern: string, routingKey: string): boolean {
  const words = pattern.split('.');
  const keys = routingKey.split('.');
  const match = (w: number, k: number): boolean => {
    if (w === words.length) return k === keys.length;
    const word = words[w];
    if (word === '#') return match(w + 1, k) || (k < keys.length && match(w, k + 1));
    if (k === keys.length) return false;
    return (word === '*' || word === keys[k]) && match(w + 1, k + 1);
  };
  return match(0, 0);
}
