/**
 * The event-stream port: keyed events on topics, consumed by consumer groups. Two adapters
 * honour the same contract (test/contracts): kafkajs (KAFKA_BROKERS) and in-memory (the
 * embedded default).
 *
 * Contract:
 * - `publish` resolves only once every message is durably accepted (Kafka: acks from all
 *   in-sync replicas); it rejects with a MessagingError (retriable when the broker is away).
 * - Messages with the same key are delivered in publish order (one partition per key).
 * - Every consumer group receives every message at least once; within a group each partition
 *   is consumed by one member at a time, so the members split the work.
 * - A message is committed only after `handle` resolves. If `handle` rejects, the same message
 *   is delivered again (after a pause) and nothing after it on its partition is delivered first.
 *   Retry budgets and dead-lettering are the consumer's business (lib/messaging/consumer), not
 *   the port's.
 */
export interface StreamMessage {
  topic: string;
  partition: number;
  /** Position in the partition, as a decimal string (Kafka offsets exceed 2^53). */
  offset: string;
  key: string;
  /** UTF-8 payload (JSON envelopes in this project). */
  value: string;
  headers: Record<string, string>;
}

export interface OutgoingMessage {
  key: string;
  value: string;
  headers?: Record<string, string>;
}

export interface SubscribeOptions {
  groupId: string;
  topics: string[];
  /** For a group with no committed position: start from the oldest message (default true). */
  fromBeginning?: boolean;
  handle: (message: StreamMessage) => Promise<void>;
  /**
   * Told how many messages of a partition this group has yet to handle (its consumer lag), as
   * the adapter learns it: Kafka after each fetched batch, in memory after each message.
   */
  onLag?: (lag: { topic: string; partition: number; messages: number }) => void;
}

export interface StreamSubscription {
  /** Stops after the message in progress has been handled and committed. Idempotent. */
  stop(): Promise<void>;
}

export interface EventStream {
  publish(topic: string, messages: OutgoingMessage[]): Promise<void>;
  subscribe(options: SubscribeOptions): Promise<StreamSubscription>;
  /**
   * A cheap round trip to the broker for readiness probes: resolves when it answers, rejects
   * with a MessagingError when it is unreachable or the stream is closed. Never throws for the
   * in-memory adapter while it is open.
   */
  health(): Promise<void>;
  /** Stops every subscription, flushes and disconnects. Idempotent. */
  close(): Promise<void>;
}
