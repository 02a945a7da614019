import type { Logger } from '../../logger.ts';
import type {
  EventStream,
  OutgoingMessage,
  StreamMessage,
  StreamSubscription,
  SubscribeOptions,
} from '../eventStream.ts';
import { MessagingError } from '../messagingError.ts';

export interface MemoryEventStreamOptions {
  /** Partitions of each topic, created on first use (Kafka's num.partitions here). Default 3. */
  partitions?: number;
  /** Pause before a message whose handle rejected is delivered again. Default 100 ms. */
  redeliveryDelayMs?: number;
  /** Where failed handles are reported; silent when absent. */
  logger?: Logger;
}

interface StoredMessage {
  key: string;
  value: string;
  headers: Record<string, string>;
}

interface Topic {
  name: string;
  partitions: StoredMessage[][];
  /** Lanes of every group reading this topic, by partition: publish wakes them. */
  lanes: Set<Lane>[];
}

interface Member {
  topics: ReadonlySet<string>;
  fromBeginning: boolean;
  handle: SubscribeOptions['handle'];
  onLag: SubscribeOptions['onLag'];
  /**
   * The member's deliveries, chained: a subscription handles one message at a time, as the
   * kafkajs adapter does with partitionsConsumedConcurrently 1.
   */
  tail: Promise<void>;
}

interface Group {
  id: string;
  /** In join order; the assignment is a pure function of it, so every rebalance is stable. */
  members: Member[];
  lanes: Map<string, Lane>;
}

/**
 * One partition as one group reads it: the committed offset and the member that owns it now.
 * One loop per lane delivers its messages in order, so a partition is never handled by two
 * members at once and a handover between members waits for the message in progress.
 */
interface Lane {
  group: Group;
  topic: Topic;
  partition: number;
  /** Next offset to deliver; undefined until a first owner decides where the group starts. */
  committed: number | undefined;
  owner: Member | undefined;
  wake: () => void;
  sleep: () => Promise<void>;
}

const DEFAULT_PARTITIONS = 3;
const DEFAULT_REDELIVERY_DELAY_MS = 100;

/**
 * The embedded event stream: Kafka's model (partitioned topics kept forever, consumer groups
 * with committed offsets, members splitting partitions) in one process, so the embedded default
 * behaves like the real broker (test/contracts/eventStream.contract.ts runs against both).
 */
export function createMemoryEventStream(options: MemoryEventStreamOptions = {}): EventStream {
  const partitionCount = options.partitions ?? DEFAULT_PARTITIONS;
  const redeliveryDelayMs = options.redeliveryDelayMs ?? DEFAULT_REDELIVERY_DELAY_MS;
  const logger = options.logger;
  if (!Number.isInteger(partitionCount) || partitionCount < 1) {
    throw new Error(`partitions must be a positive integer, got ${partitionCount}`);
  }

  const topics = new Map<string, Topic>();
  const groups = new Map<string, Group>();
  const laneLoops = new Set<Promise<void>>();
  const pauses = new Set<{ timer: NodeJS.Timeout; resolve: () => void }>();
  let closing: Promise<void> | undefined;

  const closedError = () => new MessagingError('event stream is closed', { retriable: false });

  function topicNamed(name: string): Topic {
    let topic = topics.get(name);
    if (!topic) {
      topic = {
        name,
        partitions: Array.from({ length: partitionCount }, () => []),
        lanes: Array.from({ length: partitionCount }, () => new Set<Lane>()),
      };
      topics.set(name, topic);
    }
    return topic;
  }

  /** A redelivery pause that close() cuts short, so no timer outlives the stream. */
  function pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const entry = {
        timer: setTimeout(() => {
          pauses.delete(entry);
          resolve();
        }, ms),
        resolve,
      };
      pauses.add(entry);
    });
  }

  function laneOf(group: Group, topic: Topic, partition: number): Lane {
    const id = `${topic.name}\u0000${partition}`;
    let lane = group.lanes.get(id);
    if (lane) return lane;
    let waiting: (() => void) | undefined;
    lane = {
      group,
      topic,
      partition,
      committed: undefined,
      owner: undefined,
      wake() {
        const resolve = waiting;
        waiting = undefined;
        resolve?.();
      },
      sleep() {
        return new Promise<void>((resolve) => (waiting = resolve));
      },
    };
    group.lanes.set(id, lane);
    topic.lanes[partition]?.add(lane);
    const loop = runLane(lane);
    laneLoops.add(loop);
    void loop.finally(() => laneLoops.delete(loop));
    return lane;
  }

  async function runLane(lane: Lane): Promise<void> {
    const log = lane.topic.partitions[lane.partition] ?? [];
    // Every check of the state and the sleep() after it happen in one synchronous step, so a
    // wake() (publish, rebalance, close) can never fall between them and be lost.
    while (!closing) {
      const owner = lane.owner;
      const offset = lane.committed ?? 0;
      const stored = log[offset];
      if (!owner || !stored) {
        await lane.sleep();
        continue;
      }
      const outcome = await deliver(lane, owner, {
        topic: lane.topic.name,
        partition: lane.partition,
        offset: String(offset),
        key: stored.key,
        value: stored.value,
        headers: { ...stored.headers },
      });
      if (outcome === 'handled') {
        lane.committed = offset + 1;
        owner.onLag?.({
          topic: lane.topic.name,
          partition: lane.partition,
          messages: log.length - offset - 1,
        });
      } else if (outcome === 'failed' && !closing) await pause(redeliveryDelayMs);
      // 'skipped': the lane changed hands while waiting for its member; deliver to the new owner.
    }
  }

  function deliver(lane: Lane, member: Member, message: StreamMessage) {
    const turn = member.tail.then(async (): Promise<'handled' | 'failed' | 'skipped'> => {
      if (closing || lane.owner !== member) return 'skipped';
      try {
        await member.handle(message);
        return 'handled';
      } catch (error) {
        logger?.warn(
          { err: error, topic: message.topic, partition: message.partition, offset: message.offset },
          'event handler failed: the message will be delivered again',
        );
        return 'failed';
      }
    });
    member.tail = turn.then(() => undefined);
    return turn;
  }

  /** Hands each partition of each subscribed topic to one member, round robin in join order. */
  function rebalance(group: Group): void {
    for (const lane of group.lanes.values()) lane.owner = undefined;
    for (const name of new Set(group.members.flatMap((member) => [...member.topics]))) {
      const topic = topicNamed(name);
      const readers = group.members.filter((member) => member.topics.has(name));
      for (let partition = 0; partition < partitionCount; partition += 1) {
        const lane = laneOf(group, topic, partition);
        const owner = readers[partition % readers.length];
        lane.owner = owner;
        // Decided here, synchronously, so "from the end" means after subscribe() resolved.
        if (owner && lane.committed === undefined) {
          lane.committed = owner.fromBeginning ? 0 : (topic.partitions[partition]?.length ?? 0);
        }
      }
    }
    for (const lane of group.lanes.values()) lane.wake();
  }

  return {
    publish(topicName, messages: OutgoingMessage[]) {
      if (closing) return Promise.reject(closedError());
      const topic = topicNamed(topicName);
      for (const message of messages) {
        const partition = partitionFor(message.key, partitionCount);
        topic.partitions[partition]?.push({
          key: message.key,
          value: message.value,
          headers: { ...message.headers },
        });
        for (const lane of topic.lanes[partition] ?? []) lane.wake();
      }
      return Promise.resolve();
    },

    subscribe(subscribeOptions): Promise<StreamSubscription> {
      if (closing) return Promise.reject(closedError());
      let group = groups.get(subscribeOptions.groupId);
      if (!group) {
        group = { id: subscribeOptions.groupId, members: [], lanes: new Map() };
        groups.set(group.id, group);
      }
      const member: Member = {
        topics: new Set(subscribeOptions.topics),
        fromBeginning: subscribeOptions.fromBeginning ?? true,
        handle: subscribeOptions.handle,
        onLag: subscribeOptions.onLag,
        tail: Promise.resolve(),
      };
      group.members.push(member);
      rebalance(group);
      const joined = group;
      let stopping: Promise<void> | undefined;
      return Promise.resolve({
        stop() {
          stopping ??= (async () => {
            const index = joined.members.indexOf(member);
            if (index >= 0) {
              joined.members.splice(index, 1);
              rebalance(joined);
            }
            // Messages queued for this member are skipped (their lanes have a new owner); the one
            // in progress finishes and, if it succeeded, is committed by its lane.
            await member.tail;
          })();
          return stopping;
        },
      });
    },

    async health() {
      if (closing) throw closedError();
    },

    close() {
      closing ??= (async () => {
        for (const entry of pauses) {
          clearTimeout(entry.timer);
          entry.resolve();
        }
        pauses.clear();
        for (const group of groups.values()) {
          for (const lane of group.lanes.values()) lane.wake();
        }
        // Each lane loop ends after its delivery in progress, so this waits for every handle.
        await Promise.all([...laneLoops]);
      })();
      return closing;
    },
  };
}

/** FNV-1a of the key's UTF-8 bytes: stable across processes, so a key keeps its partition. */
function partitionFor(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash % partitions;
}
