import { setTimeout as sleepFor } from 'node:timers/promises';
import { connect, type ChannelModel, type ConsumeMessage, type GetMessage } from 'amqplib';
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
import { openConfirmChannel, PUBLISH_TAG_HEADER, type ConfirmedChannel } from './openConfirmChannel.ts';
import { toMessagingError } from './toMessagingError.ts';

export interface RabbitReconnectOptions {
  /** Pause before the first reconnect attempt; doubles with each failure (default 200 ms). */
  initialDelayMs?: number;
  /** Longest pause between attempts (default 15_000 ms). */
  maxDelayMs?: number;
  /** Failed attempts in a row before giving up and calling `onFatal` (default 20: about 3 minutes). */
  maxAttempts?: number;
}

export interface RabbitWorkQueueOptions {
  url: string;
  logger: Logger;
  /** Longest wait for a publisher confirm, or for the connection when it is being restored. */
  confirmTimeoutMs?: number;
  /** Longest wait for the TCP + AMQP handshake of one connection attempt (default 10_000 ms). */
  connectTimeoutMs?: number;
  /** Shown by `rabbitmqctl list_connections client_properties` and the management UI. */
  connectionName?: string;
  reconnect?: RabbitReconnectOptions;
  /**
   * Called once when a lost connection could not be restored within `reconnect.maxAttempts`:
   * the work queue is then dead (every call rejects) and the owner should exit non-zero so a
   * supervisor restarts the process. Without it the failure is only logged.
   */
  onFatal?: (error: MessagingError) => void;
}

/** Carries the 1-based attempt number of a retried job; stripped from the job's headers. */
const ATTEMPT_HEADER = 'x-attempt';

/** Headers that belong to the broker or this adapter, never to the job. */
function isInternalHeader(name: string): boolean {
  return (
    name === ATTEMPT_HEADER ||
    name === PUBLISH_TAG_HEADER ||
    name === 'x-death' ||
    name.startsWith('x-first-death-') ||
    name.startsWith('x-last-death-')
  );
}

function retryQueueName(topology: WorkQueueTopology, delayMs: number): string {
  return `${topology.queue}.retry.${delayMs}`;
}

function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint')
    return String(value);
  // Only another publisher's tables or arrays get here; this adapter writes strings.
  return JSON.stringify(value) ?? '';
}

function toJob(message: ConsumeMessage | GetMessage): Job {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(message.properties.headers ?? {})) {
    if (!isInternalHeader(name) && value !== undefined) headers[name] = headerText(value);
  }
  const attempt = Number(message.properties.headers?.[ATTEMPT_HEADER] ?? 1);
  return {
    id: headerText(message.properties.messageId ?? ''),
    body: message.content.toString('utf8'),
    headers,
    attempt: Number.isInteger(attempt) && attempt >= 1 ? attempt : 1,
  };
}

/**
 * Declares the topology of the port on RabbitMQ:
 * - `exchange` (topic, durable) → `queue` (durable) through each routing key;
 * - one durable `${queue}.retry.${delayMs}` per distinct delay, with that message TTL and the
 *   default exchange as dead-letter exchange with routing key `queue`: an expired retry goes
 *   straight back to `queue` and not through `exchange`, whose other bindings already had
 *   their copy. The delay is in the name so changing the delays never redeclares a queue with
 *   other arguments (406 PRECONDITION_FAILED); retry queues of old delays simply drain.
 * - `${queue}.dlq` (durable), filled by the consumer with the error in headers.
 * On a channel of its own, as a failed declaration closes the channel it ran on.
 */
async function declareTopology(model: ChannelModel, topology: WorkQueueTopology, logger: Logger) {
  const channel = await model.createChannel();
  channel.on('error', (error: Error) => logger.warn({ err: error }, 'RabbitMQ declaration failed'));
  try {
    await channel.assertExchange(topology.exchange, 'topic', { durable: true });
    await channel.assertQueue(topology.queue, { durable: true });
    for (const key of topology.routingKeys) await channel.bindQueue(topology.queue, topology.exchange, key);
    for (const delayMs of new Set(topology.retryDelaysMs)) {
      await channel.assertQueue(retryQueueName(topology, delayMs), {
        durable: true,
        messageTtl: delayMs,
        deadLetterExchange: '',
        deadLetterRoutingKey: topology.queue,
      });
    }
    await channel.assertQueue(deadLetterQueueName(topology), { durable: true });
  } finally {
    await channel.close().catch(() => {});
  }
}

interface Session {
  model: ChannelModel;
  /** Set by the connection's 'close' event, which may come before we adopted the session. */
  closed: boolean;
  /** The confirm channel of `publish`, opened on first use and reopened after a channel error. */
  publisher?: Promise<ConfirmedChannel>;
}

interface Consumer {
  stop(): Promise<void>;
}

/**
 * The work queue on RabbitMQ (amqplib), honouring the port's contract
 * (lib/messaging/workQueue.ts). It connects on first use. When an established connection is
 * lost it reconnects with exponential backoff, re-declares every topology it declared and
 * restarts its consumers; jobs unacknowledged at the time are redelivered by the broker. Until
 * the connection is back, calls wait up to `confirmTimeoutMs`, then reject retriable.
 */
export function createRabbitWorkQueue(options: RabbitWorkQueueOptions): WorkQueue {
  const { url, logger, onFatal } = options;
  const confirmTimeoutMs = options.confirmTimeoutMs ?? 5_000;
  const reconnectInitialDelayMs = options.reconnect?.initialDelayMs ?? 200;
  const reconnectMaxDelayMs = options.reconnect?.maxDelayMs ?? 15_000;
  const reconnectMaxAttempts = options.reconnect?.maxAttempts ?? 20;
  /** Declared topologies, re-declared on every new connection (a reset broker forgets them). */
  const topologies = new Map<string, WorkQueueTopology>();
  const consumers = new Set<Consumer>();
  const publishes = new Set<Promise<void>>();
  /** Aborts every backoff pause when close() starts. */
  const closeController = new AbortController();
  let session: Session | undefined;
  /** The connection being opened: the first one, or the reconnect loop. */
  let connecting: Promise<Session> | undefined;
  let fatal: MessagingError | undefined;
  let closing: Promise<void> | undefined;

  const closedError = () => new MessagingError('the work queue is closed', { retriable: false });

  function ensureUsable(): void {
    if (closing) throw closedError();
    if (fatal) throw fatal;
  }

  function backoffMs(attempt: number, initialMs: number, maxMs: number): number {
    const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
    // Half fixed, half random: many clients cut off together do not return together.
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }

  async function pause(ms: number, signal: AbortSignal): Promise<void> {
    await sleepFor(ms, undefined, { signal }).catch(() => {});
  }

  async function openSession(): Promise<Session> {
    const model = await connect(url, {
      // Without it, a broker host that drops packets holds an attempt for the OS's TCP timeout.
      timeout: options.connectTimeoutMs ?? 10_000,
      clientProperties: { connection_name: options.connectionName ?? 'work-queue' },
    });
    const opened: Session = { model, closed: false };
    // Without an 'error' listener a broker-side close (320 CONNECTION_FORCED, heartbeat
    // timeout) would be thrown as an uncaught exception; 'close' follows it in every case.
    model.on('error', (error: Error) => logger.warn({ err: error }, 'RabbitMQ connection error'));
    model.on('close', (error?: Error) => {
      opened.closed = true;
      onConnectionClosed(opened, error);
    });
    model.on('blocked', (reason: string) => logger.warn({ reason }, 'RabbitMQ blocks publishing'));
    model.on('unblocked', () => logger.info('RabbitMQ unblocks publishing'));
    try {
      for (const topology of topologies.values()) await declareTopology(model, topology, logger);
    } catch (error) {
      await model.close().catch(() => {});
      throw error;
    }
    return opened;
  }

  function onConnectionClosed(closed: Session, error: Error | undefined): void {
    if (closed !== session) return; // one we closed ourselves, or a failed reconnect attempt
    session = undefined;
    if (closing) return;
    logger.warn({ err: error }, 'RabbitMQ connection lost: reconnecting');
    void startConnecting(reconnect());
  }

  function startConnecting(attempt: Promise<Session>): Promise<Session> {
    connecting = attempt;
    // Callers await `connecting` when they need it; this keeps an unawaited failure from
    // becoming an unhandled rejection.
    attempt.then(
      (opened) => {
        if (connecting === attempt) connecting = undefined;
        if (!opened.closed) session = opened;
        else if (!closing) void startConnecting(reconnect()); // lost before it was even adopted
      },
      () => {
        if (connecting === attempt) connecting = undefined;
      },
    );
    return attempt;
  }

  async function reconnect(): Promise<Session> {
    for (let attempt = 1; ; attempt++) {
      await pause(backoffMs(attempt, reconnectInitialDelayMs, reconnectMaxDelayMs), closeController.signal);
      if (closing) throw closedError();
      try {
        const opened = await openSession();
        if (closing) {
          await opened.model.close().catch(() => {});
          throw closedError();
        }
        logger.info({ attempt }, 'RabbitMQ connection restored');
        return opened;
      } catch (error) {
        if (closing) throw closedError();
        if (attempt >= reconnectMaxAttempts) {
          fatal = new MessagingError(`RabbitMQ unreachable: gave up after ${attempt} reconnect attempts`, {
            retriable: false,
            cause: error,
          });
          logger.error({ err: fatal }, 'RabbitMQ connection lost for good');
          try {
            onFatal?.(fatal);
          } catch (callbackError) {
            logger.error({ err: callbackError }, 'onFatal threw');
          }
          throw fatal;
        }
        logger.warn({ err: error, attempt }, 'RabbitMQ reconnect attempt failed');
      }
    }
  }

  /** The live connection, opening or awaiting one for at most `confirmTimeoutMs`. */
  async function currentSession(): Promise<Session> {
    ensureUsable();
    if (session && !session.closed) return session;
    const attempt = connecting ?? startConnecting(openSession());
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new MessagingError(`no RabbitMQ connection within ${confirmTimeoutMs} ms`, { retriable: true }),
          ),
        confirmTimeoutMs,
      );
    });
    try {
      return await Promise.race([attempt, timeout]);
    } catch (error) {
      throw toMessagingError(error, 'connecting to RabbitMQ');
    } finally {
      clearTimeout(timer);
    }
  }

  async function publisherOf(current: Session): Promise<ConfirmedChannel> {
    const existing = await current.publisher?.catch(() => undefined);
    if (existing?.isOpen()) return existing;
    const opening = openConfirmChannel(current.model, { logger });
    current.publisher = opening;
    opening.catch(() => {
      if (current.publisher === opening) current.publisher = undefined;
    });
    return opening;
  }

  async function declare(topology: WorkQueueTopology): Promise<void> {
    checkTopology(topology);
    const current = await currentSession();
    try {
      await declareTopology(current.model, topology, logger);
    } catch (error) {
      throw toMessagingError(error, `declaring queue ${topology.queue}`);
    }
    topologies.set(JSON.stringify(topology), topology);
  }

  function createConsumer(topology: WorkQueueTopology, prefetch: number, handle: ConsumeOptions['handle']) {
    const stopController = new AbortController();
    const signal = AbortSignal.any([stopController.signal, closeController.signal]);
    const inFlight = new Set<Promise<void>>();
    let channel: ConfirmedChannel | undefined;
    let consumerTag: string | undefined;
    let restarting: Promise<void> | undefined;
    let stopping: Promise<void> | undefined;

    async function settled(): Promise<void> {
      while (inFlight.size > 0) await Promise.all(inFlight);
    }

    async function start({ redeclare }: { redeclare: boolean }): Promise<void> {
      const current = await currentSession();
      // On a restart: the channel may have died because someone deleted the queue.
      if (redeclare) await declareTopology(current.model, topology, logger);
      const opened = await openConfirmChannel(current.model, {
        logger,
        onClose: () => {
          if (channel === opened) keepConsuming();
        },
      });
      channel = opened;
      await opened.channel.prefetch(prefetch);
      const reply = await opened.channel.consume(topology.queue, (message) => onMessage(opened, message), {
        noAck: false,
      });
      consumerTag = reply.consumerTag;
    }

    /** After the channel or connection died: start again once the old jobs are settled. */
    function keepConsuming(): void {
      if (restarting || stopping || closing) return;
      restarting = (async () => {
        // Waiting keeps `prefetch` true: the broker redelivers the old channel's jobs at once.
        await settled();
        for (let attempt = 1; !signal.aborted && !fatal; attempt++) {
          try {
            await start({ redeclare: true });
            if (channel?.isOpen()) return;
          } catch (error) {
            if (signal.aborted || fatal) return;
            logger.warn({ err: error, queue: topology.queue, attempt }, 'restarting the consumer failed');
          }
          await pause(backoffMs(attempt, reconnectInitialDelayMs, reconnectMaxDelayMs), signal);
        }
      })().finally(() => {
        restarting = undefined;
      });
    }

    function onMessage(from: ConfirmedChannel, message: ConsumeMessage | null): void {
      if (message === null) {
        // The broker cancelled the consumer (its queue was deleted): start over on a new channel.
        logger.warn({ queue: topology.queue }, 'RabbitMQ cancelled the consumer');
        from.channel.close().catch(() => {});
        return;
      }
      if (stopping) {
        // Arrived between stop() and the broker's cancel-ok: give it back for another consumer.
        tryOn(from, () => from.channel.nack(message, false, true));
        return;
      }
      const task: Promise<void> = handleDelivery(from, message).then(() => {
        inFlight.delete(task);
      });
      inFlight.add(task);
    }

    /** Never rejects: every outcome ends in an ack, a nack, or a channel that is gone. */
    async function handleDelivery(from: ConfirmedChannel, message: ConsumeMessage): Promise<void> {
      const job = toJob(message);
      try {
        await handle(job);
      } catch (error) {
        try {
          await forward(from, message, job, error);
        } catch (forwardError) {
          logger.error({ err: forwardError, jobId: job.id }, 'could not retry or dead-letter the job');
          if (!from.isOpen()) return; // the broker requeued it with the channel
          // Requeued after a pause rather than at once, so a broken retry path cannot spin.
          await pause(1_000, closeController.signal);
          tryOn(from, () => from.channel.nack(message, false, true));
          return;
        }
      }
      // On a channel that died meanwhile the broker has requeued the job: it runs again.
      tryOn(from, () => from.channel.ack(message));
    }

    /** Sends a failed job to its delay queue or to the DLQ, confirmed, on the delivery's channel. */
    async function forward(from: ConfirmedChannel, message: ConsumeMessage, job: Job, error: unknown) {
      const delayMs = topology.retryDelaysMs[job.attempt - 1];
      const properties = {
        messageId: job.id,
        persistent: true,
        contentType: message.properties.contentType as string | undefined,
      };
      if (!isPermanentJobError(error) && job.attempt < maxAttempts(topology) && delayMs !== undefined) {
        logger.warn({ err: error, jobId: job.id, attempt: job.attempt, delayMs }, 'job failed: retrying');
        await from.publish(
          '',
          retryQueueName(topology, delayMs),
          message.content,
          { ...properties, headers: { ...job.headers, [ATTEMPT_HEADER]: job.attempt + 1 } },
          confirmTimeoutMs,
        );
        return;
      }
      logger.error({ err: error, jobId: job.id, attempt: job.attempt }, 'job failed: dead-lettered');
      await from.publish(
        '',
        deadLetterQueueName(topology),
        message.content,
        {
          ...properties,
          headers: {
            ...job.headers,
            ...deadLetterHeaders(error, job.attempt, new Date()),
            [ATTEMPT_HEADER]: job.attempt,
          },
        },
        confirmTimeoutMs,
      );
    }

    function tryOn(from: ConfirmedChannel, settle: () => void): void {
      try {
        settle();
      } catch (error) {
        // amqplib throws on a closed channel; the broker has requeued the job with it.
        logger.debug({ err: error }, 'could not settle a job on a closed channel');
      }
    }

    const consumer: Consumer = {
      stop() {
        stopping ??= (async () => {
          stopController.abort();
          await restarting;
          const last = channel;
          if (last?.isOpen() && consumerTag) await last.channel.cancel(consumerTag).catch(() => {});
          await settled();
          if (last?.isOpen()) await last.channel.close().catch(() => {});
          consumers.delete(consumer);
        })();
        return stopping;
      },
    };
    return { consumer, start };
  }

  return {
    async declare(topology) {
      await declare(topology);
    },

    async publish(exchange: string, routingKey: string, job: OutgoingJob) {
      ensureUsable();
      const task = (async () => {
        const publisher = await publisherOf(await currentSession());
        await publisher.publish(
          exchange,
          routingKey,
          Buffer.from(job.body, 'utf8'),
          // persistent: survives a broker restart in the durable queues.
          { messageId: job.id, persistent: true, headers: { ...job.headers } },
          confirmTimeoutMs,
        );
      })();
      publishes.add(task);
      try {
        await task;
      } finally {
        publishes.delete(task);
      }
    },

    async consume(
      topology: WorkQueueTopology,
      { prefetch, handle }: ConsumeOptions,
    ): Promise<WorkQueueConsumer> {
      checkTopology(topology);
      checkPrefetch(prefetch);
      await declare(topology);
      const { consumer, start } = createConsumer(topology, prefetch, handle);
      consumers.add(consumer);
      try {
        await start({ redeclare: false }); // declare() just did it
      } catch (error) {
        await consumer.stop();
        throw toMessagingError(error, `consuming ${topology.queue}`);
      }
      return { stop: () => consumer.stop() };
    },

    async deadLetters(topology, { limit = 1_000 } = {}) {
      const current = await currentSession();
      const queue = deadLetterQueueName(topology);
      const channel = await current.model.createChannel().catch((error: unknown) => {
        throw toMessagingError(error, `reading ${queue}`);
      });
      channel.on('error', (error: Error) => logger.warn({ err: error }, 'reading the dead letters failed'));
      try {
        const jobs: Job[] = [];
        while (jobs.length < limit) {
          const message = await channel.get(queue, { noAck: false });
          if (message === false) break;
          jobs.push(toJob(message));
        }
        return jobs;
      } catch (error) {
        throw toMessagingError(error, `reading ${queue}`);
      } finally {
        // Closing the channel without acks puts every message back where it was: a peek.
        await channel.close().catch(() => {});
      }
    },

    async health() {
      await currentSession();
    },

    close() {
      closing ??= (async () => {
        closeController.abort();
        await Promise.allSettled([...consumers].map((consumer) => consumer.stop()));
        await Promise.allSettled(publishes);
        const last = session ?? (await connecting?.catch(() => undefined));
        session = undefined;
        await last?.model.close().catch(() => {});
      })();
      return closing;
    },
  };
}
