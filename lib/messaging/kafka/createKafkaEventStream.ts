import { setTimeout as sleep } from 'node:timers/promises';
import { ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import kafkajs from 'kafkajs';
import type {
  Consumer,
  ConsumerConfig,
  EachMessagePayload,
  IHeaders,
  Kafka as KafkaClient,
  LogEntry,
  logLevel as LogLevel,
  ProducerConfig,
} from 'kafkajs';
import type { Logger } from '../../logger.ts';
import type { EventStream, StreamMessage, StreamSubscription, SubscribeOptions } from '../eventStream.ts';
import { MessagingError } from '../messagingError.ts';

// kafkajs is CommonJS and spreads its error classes into module.exports, which Node's ESM loader
// cannot see as named exports (`import { KafkaJSError } from 'kafkajs'` fails at load time).
const { Kafka, KafkaJSError, Partitioners, logLevel } = kafkajs;

export interface KafkaEventStreamOptions {
  brokers: string[];
  clientId: string;
  logger: Logger;
  /** Partitions of the topics this stream creates. Default 3. */
  numPartitions?: number;
  /** Pause before a message whose handle rejected is delivered again. Default 1 000 ms. */
  redeliveryDelayMs?: number;
}

const DEFAULT_NUM_PARTITIONS = 3;
const DEFAULT_REDELIVERY_DELAY_MS = 1_000;
/** A consumer that crashed for good is re-created after this, doubling up to the maximum. */
const RESTART_DELAY_MS = 1_000;
const MAX_RESTART_DELAY_MS = 30_000;

/**
 * Producer: idempotent with one request in flight, so a retried batch can neither duplicate nor
 * overtake the next one, and acks from every in-sync replica. kafkajs retries an idempotent
 * producer forever by default; a bounded budget (~10 s with the broker away) lets publish()
 * reject with a retriable MessagingError, which the outbox relay turns into "try again later".
 */
const PRODUCER_CONFIG: ProducerConfig = {
  idempotent: true,
  maxInFlightRequests: 1,
  // Java-compatible murmur2, stated explicitly so kafkajs does not warn about its v2 default.
  createPartitioner: Partitioners.DefaultPartitioner,
  retry: { retries: 5, initialRetryTime: 300, maxRetryTime: 5_000 },
};

/**
 * Consumer tuning. kafkajs heartbeats only between fetches and messages, and a member learns of
 * a rebalance from a heartbeat; an idle fetch blocks stop() and rebalances for maxWaitTimeInMs.
 * Short values for both make joins, leaves and shutdowns take about a second instead of ~5.
 */
const CONSUMER_TUNING: Omit<ConsumerConfig, 'groupId'> = {
  heartbeatInterval: 1_000,
  maxWaitTimeInMs: 1_000,
  // kafkajs restarts a consumer whose retries ran out only when this says so (or is absent);
  // crashes it will not restart are handled by re-creating the consumer (see onCrash).
  retry: {
    retries: 8,
    initialRetryTime: 300,
    maxRetryTime: 10_000,
    restartOnFailure: () => Promise.resolve(true),
  },
};

/**
 * A freshly started broker answers topic creation with retriable errors for a few seconds
 * ("This server does not host this topic-partition") while it elects leaders; a service
 * starting beside it must wait that out rather than exit.
 */
const TOPIC_CREATION_RETRY = retry(
  handleWhen((error) => {
    // kafkajs retries inside createTopics first, then wraps the last retriable error as
    // KafkaJSNumberOfRetriesExceeded (itself non-retriable): look at what it gave up on.
    const { retriable, cause } = error as { retriable?: unknown; cause?: { retriable?: unknown } };
    return retriable === true || cause?.retriable === true;
  }),
  { maxAttempts: 6, backoff: new ExponentialBackoff({ initialDelay: 200, maxDelay: 3_000 }) },
);

/**
 * The event stream on Kafka (kafkajs). Clients connect on first use, so a service starts while
 * the broker is away; publish() and subscribe() then reject with retriable MessagingErrors.
 */
export function createKafkaEventStream(options: KafkaEventStreamOptions): EventStream {
  const { logger } = options;
  const numPartitions = options.numPartitions ?? DEFAULT_NUM_PARTITIONS;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? DEFAULT_REDELIVERY_DELAY_MS;
  const kafka = new Kafka({
    clientId: options.clientId,
    brokers: options.brokers,
    logLevel: kafkaLogLevel(logger.level),
    logCreator: () => logTo(logger.child({ component: 'kafkajs' })),
  });

  const producer = lazyClient(() => kafka.producer(PRODUCER_CONFIG));
  const admin = lazyClient(() => kafka.admin());
  const ensuredTopics = new Map<string, Promise<void>>();
  const publishing = new Set<Promise<void>>();
  const subscriptions = new Set<{ stop(): Promise<void> }>();
  let closing: Promise<void> | undefined;

  const closedError = () => new MessagingError('event stream is closed', { retriable: false });

  /**
   * Creates the topic with our partition count before first use. The broker would auto-create
   * it too, but with its own num.partitions, and a producer and a consumer racing to auto-create
   * the same topic is a known source of LEADER_NOT_AVAILABLE storms.
   */
  function ensureTopic(topic: string): Promise<void> {
    let ensured = ensuredTopics.get(topic);
    if (!ensured) {
      ensured = TOPIC_CREATION_RETRY.execute(async () => {
        const client = await admin.get();
        // false (not an error) when the topic exists already.
        await client.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true });
      });
      ensuredTopics.set(topic, ensured);
      void ensured.catch(() => ensuredTopics.delete(topic));
    }
    return ensured;
  }

  async function send(topic: string, messages: Parameters<EventStream['publish']>[1]): Promise<void> {
    await ensureTopic(topic);
    const client = await producer.get();
    try {
      await client.send({
        topic,
        acks: -1,
        messages: messages.map((message) => ({
          key: message.key,
          value: message.value,
          headers: message.headers ?? {},
        })),
      });
    } catch (error) {
      // After a failed send the broker may or may not have written the batch, yet kafkajs rolls
      // its sequence numbers back: the next batch would reuse them and be rejected as out of
      // order or dropped as a duplicate. A new producer (new producer id) starts clean.
      await producer.discard(client, (discardError) =>
        logger.warn({ err: discardError }, 'disconnecting a failed kafka producer failed'),
      );
      throw error;
    }
  }

  return {
    async publish(topic, messages) {
      if (closing) throw closedError();
      if (messages.length === 0) return;
      const sending = send(topic, messages);
      publishing.add(sending);
      try {
        await sending;
      } catch (error) {
        throw toMessagingError(error, `publishing ${messages.length} message(s) to ${topic} failed`);
      } finally {
        publishing.delete(sending);
      }
    },

    async subscribe(subscribeOptions): Promise<StreamSubscription> {
      if (closing) throw closedError();
      try {
        await Promise.all(subscribeOptions.topics.map(ensureTopic));
      } catch (error) {
        throw toMessagingError(error, `creating topics ${subscribeOptions.topics.join(', ')} failed`);
      }
      if (closing) throw closedError();
      const subscription = startSubscription({ kafka, logger, redeliveryDelayMs, options: subscribeOptions });
      subscriptions.add(subscription);
      const stop = () => subscription.stop().finally(() => subscriptions.delete(subscription));
      try {
        await subscription.started;
      } catch (error) {
        await stop();
        throw toMessagingError(error, `subscribing group ${subscribeOptions.groupId} failed`);
      }
      return { stop };
    },

    async health() {
      if (closing) throw closedError();
      try {
        await (await admin.get()).describeCluster();
      } catch (error) {
        throw toMessagingError(error, 'asking kafka for its cluster');
      }
    },

    close() {
      closing ??= (async () => {
        await Promise.all([...subscriptions].map((subscription) => subscription.stop()));
        // The flush: kafkajs buffers nothing, so waiting for the sends in progress is enough.
        await Promise.allSettled([...publishing]);
        const warn = (error: unknown) => logger.warn({ err: error }, 'disconnecting from kafka failed');
        await Promise.all([producer.close(warn), admin.close(warn)]);
      })();
      return closing;
    },
  };
}

interface SubscriptionDeps {
  kafka: KafkaClient;
  logger: Logger;
  redeliveryDelayMs: number;
  options: SubscribeOptions;
}

/** One consumer group member, re-created if kafkajs crashes it without restarting it. */
function startSubscription({ kafka, logger, redeliveryDelayMs, options }: SubscriptionDeps) {
  const { groupId, topics, handle } = options;
  const fromBeginning = options.fromBeginning ?? true;
  const log = logger.child({ groupId });
  // Cuts a redelivery pause short when the subscription stops.
  const stopSignal = new AbortController();
  let consumer: Consumer | undefined;
  let starting: Promise<void> | undefined;
  let restartTimer: NodeJS.Timeout | undefined;
  let restartDelayMs = RESTART_DELAY_MS;
  let stopping: Promise<void> | undefined;

  /**
   * A rejected handle is retried here, in place, rather than thrown to kafkajs: a throw stops
   * fetching for the whole member and goes through kafkajs' retrier, whose backoff grows to
   * maxRetryTime and whose retry count is shared with broker errors until the consumer crashes
   * and rejoins its group. In place, the same message is handled again after a fixed pause and
   * nothing after it is delivered first; the offset is resolved (and later committed) only when
   * handle resolves.
   */
  async function eachMessage(payload: EachMessagePayload): Promise<void> {
    const { topic, partition, message } = payload;
    const streamMessage: StreamMessage = {
      topic,
      partition,
      offset: message.offset,
      key: message.key?.toString('utf8') ?? '',
      value: message.value?.toString('utf8') ?? '',
      headers: decodeHeaders(message.headers),
    };
    for (let attempt = 1; ; attempt += 1) {
      try {
        await handle(streamMessage);
        return;
      } catch (error) {
        log.warn(
          { err: error, topic, partition, offset: message.offset, attempt },
          'event handler failed: the message will be delivered again',
        );
      }
      if (!stopping) await sleep(redeliveryDelayMs, undefined, { signal: stopSignal.signal }).catch(() => {});
      if (stopping) {
        // Leaves the offset unresolved, so the group's next member starts at this message. A
        // KafkaJSError, because kafkajs logs any other error thrown by eachMessage as a bug.
        throw new KafkaJSError('subscription stopped before the message was handled', { retriable: true });
      }
      // Rejects while the group rebalances: kafkajs then rejoins, and whichever member gets this
      // partition starts at this same uncommitted message.
      await payload.heartbeat();
    }
  }

  async function start(): Promise<void> {
    const member = kafka.consumer({ groupId, ...CONSUMER_TUNING });
    consumer = member;
    member.on(member.events.CRASH, ({ payload }) => onCrash(payload.error, payload.restart));
    if (options.onLag) {
      const onLag = options.onLag;
      // offsetLag: the partition's high watermark (at fetch time) minus this batch's last offset.
      member.on(member.events.END_BATCH_PROCESS, ({ payload }) =>
        onLag({ topic: payload.topic, partition: payload.partition, messages: Number(payload.offsetLag) }),
      );
    }
    try {
      await member.connect();
      await member.subscribe({ topics, fromBeginning });
      // One partition at a time: a member handles one message at a time, in partition order.
      // kafkajs commits offsets resolved by eachMessage at the end of each batch, on rebalance
      // and on stop, and every 5 s within a long batch.
      await member.run({
        partitionsConsumedConcurrently: 1,
        autoCommit: true,
        autoCommitInterval: 5_000,
        eachMessage,
      });
    } catch (error) {
      await member.disconnect().catch(() => {});
      throw error;
    }
  }

  /**
   * kafkajs restarts a crashed consumer itself when the error is retriable; otherwise (a
   * non-retriable protocol error, a bug in a listener) the consumer stays disconnected and the
   * CRASH event is the only sign. This re-creates it with backoff rather than leave the group
   * short of a member with nobody told.
   */
  function onCrash(error: Error, restart: boolean): void {
    if (stopping) return;
    if (restart) {
      log.warn({ err: error }, 'kafka consumer crashed: kafkajs restarts it');
      return;
    }
    log.error({ err: error, restartDelayMs }, 'kafka consumer crashed for good: re-creating it');
    scheduleRestart();
  }

  function scheduleRestart(): void {
    clearTimeout(restartTimer);
    restartTimer = setTimeout(() => {
      restartTimer = undefined;
      if (stopping) return;
      starting = start().then(
        () => {
          restartDelayMs = RESTART_DELAY_MS;
        },
        (error: unknown) => {
          restartDelayMs = Math.min(restartDelayMs * 2, MAX_RESTART_DELAY_MS);
          log.error({ err: error, restartDelayMs }, 're-creating the kafka consumer failed');
          if (!stopping) scheduleRestart();
        },
      );
    }, restartDelayMs);
  }

  starting = start();
  const started = starting;
  return {
    /** Resolves once the member has joined its group (kafkajs' run() waits for the join). */
    started,
    stop(): Promise<void> {
      stopping ??= (async () => {
        stopSignal.abort();
        clearTimeout(restartTimer);
        await starting?.catch(() => {});
        try {
          // Waits for the message in progress, commits resolved offsets, leaves the group.
          await consumer?.disconnect();
        } catch (error) {
          // The coordinator evicts the member after its session timeout anyway.
          log.warn({ err: error }, 'disconnecting the kafka consumer failed');
        }
      })();
      return stopping;
    },
  };
}

interface Connectable {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
}

/** A client connected on first use and shared; a failed connection is forgotten, so the next use tries again. */
function lazyClient<T extends Connectable>(create: () => T) {
  let ready: Promise<T> | undefined;
  let closed = false;
  const forget = async (client: T, onError: (error: unknown) => void) => {
    try {
      await client.disconnect();
    } catch (error) {
      onError(error);
    }
  };
  return {
    get(): Promise<T> {
      if (closed) return Promise.reject(new MessagingError('event stream is closed', { retriable: false }));
      if (!ready) {
        const client = create();
        const connecting: Promise<T> = client.connect().then(
          () => client,
          async (error: unknown) => {
            if (ready === connecting) ready = undefined;
            await client.disconnect().catch(() => {});
            throw error;
          },
        );
        ready = connecting;
      }
      return ready;
    },
    /** Drops `client` if it is still the shared one, and disconnects it. */
    async discard(client: T, onError: (error: unknown) => void): Promise<void> {
      const current = ready;
      if (current && (await current.catch(() => undefined)) === client && ready === current)
        ready = undefined;
      await forget(client, onError);
    },
    async close(onError: (error: unknown) => void): Promise<void> {
      closed = true;
      const current = ready;
      ready = undefined;
      const client = await current?.catch(() => undefined);
      if (client) await forget(client, onError);
    },
  };
}

/** kafkajs turns a repeated header into an array; the port keeps the last value, like Java's lastHeader(). */
function decodeHeaders(headers: IHeaders | undefined): Record<string, string> {
  const decoded: Record<string, string> = {};
  for (const [name, raw] of Object.entries(headers ?? {})) {
    const value = Array.isArray(raw) ? raw.at(-1) : raw;
    if (value !== undefined) decoded[name] = value.toString();
  }
  return decoded;
}

/**
 * Whether trying again can succeed. kafkajs gives up with KafkaJSNumberOfRetriesExceeded, which
 * is marked non-retriable although what it retried (broker away, timeouts) heals; like kafkajs'
 * own restart decision, judge by the root cause.
 */
function isRetriable(error: unknown): boolean {
  if (!(error instanceof Error) || !error.name.startsWith('KafkaJS')) return false;
  if (error.name === 'KafkaJSNumberOfRetriesExceeded') return true;
  let root: Error = error;
  while (root.cause instanceof Error) root = root.cause;
  return (root as { retriable?: unknown }).retriable === true;
}

function toMessagingError(error: unknown, message: string): MessagingError {
  if (error instanceof MessagingError) return error;
  const reason = error instanceof Error ? error.message : String(error);
  return new MessagingError(`${message}: ${reason}`, { retriable: isRetriable(error), cause: error });
}

function kafkaLogLevel(level: string): LogLevel {
  switch (level) {
    case 'silent':
      return logLevel.NOTHING;
    case 'fatal':
    case 'error':
      return logLevel.ERROR;
    case 'warn':
      return logLevel.WARN;
    case 'info':
      return logLevel.INFO;
    default:
      return logLevel.DEBUG;
  }
}

/**
 * kafkajs' log entries as pino lines: the entry's fields become the line's fields. Two kinds of
 * kafkajs noise are turned down so that an error line means something: its Connection namespace
 * logs every error response at ERROR before the caller decides whether it is routine (a rebalance
 * answers heartbeats with REBALANCE_IN_PROGRESS) — real failures are logged again where they are
 * handled — and each producer warns about the bounded retries chosen in PRODUCER_CONFIG.
 */
function logTo(logger: Logger): (entry: LogEntry) => void {
  return ({ namespace, level, log }) => {
    const { message, timestamp: _timestamp, logger: _logger, ...fields } = log as Record<string, unknown>;
    const line = { ...fields, namespace };
    const text = typeof message === 'string' ? message : 'kafkajs';
    if (namespace === 'Connection' && level === logLevel.ERROR) logger.warn(line, text);
    else if (text.startsWith('Limiting retries for the idempotent producer')) logger.debug(line, text);
    else if (level === logLevel.ERROR) logger.error(line, text);
    else if (level === logLevel.WARN) logger.warn(line, text);
    else if (level === logLevel.INFO) logger.info(line, text);
    else logger.debug(line, text);
  };
}
