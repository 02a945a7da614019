import { afterEach, describe, expect, it } from 'vitest';
import { testConfig, uniqueSchemaPrefix } from '../../test/support/testConfig.ts';
import type { Database } from '../db/createDatabase.ts';
import { migrate } from '../db/migrate.ts';
import { openServiceDatabase } from '../db/openServiceDatabase.ts';
import { createLogger } from '../logger.ts';
import type { EventEnvelope } from '../messaging/envelope.ts';
import type { EventStream, StreamMessage } from '../messaging/eventStream.ts';
import { createMemoryEventStream } from '../messaging/memory/createMemoryEventStream.ts';
import { MessagingError } from '../messaging/messagingError.ts';
import { appendEvent, outboxMigrations } from './appendEvent.ts';
import { createOutboxRelay, type OutboxRelay } from './createOutboxRelay.ts';

const logger = createLogger({ level: 'silent', service: 'test' });
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setUp() {
  const db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}outbox` });
  cleanups.push(async () => {
    if (db.kind === 'postgres') await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  });
  await migrate(db, [outboxMigrations]);
  const stream = createMemoryEventStream();
  cleanups.push(() => stream.close());
  return { db, stream };
}

/** A stream that can be switched off, as a broker outage looks to the relay. */
function switchable(inner: EventStream) {
  let up = true;
  return {
    set up(value: boolean) {
      up = value;
    },
    stream: {
      ...inner,
      publish: (topic, messages) =>
        up
          ? inner.publish(topic, messages)
          : Promise.reject(new MessagingError('broker down', { retriable: true })),
    } satisfies EventStream,
  };
}

async function collect(stream: EventStream, topic: string) {
  const received: StreamMessage[] = [];
  const subscription = await stream.subscribe({
    groupId: `g-${Math.random()}`,
    topics: [topic],
    handle: async (message) => {
      received.push(message);
    },
  });
  cleanups.push(() => subscription.stop());
  return received;
}

async function until(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function startRelay(db: Database, stream: EventStream): OutboxRelay {
  const relay = createOutboxRelay({ db, stream, logger, pollIntervalMs: 20, maxBackoffMs: 50 });
  relay.start();
  cleanups.push(() => relay.stop());
  return relay;
}

const append = (db: Database, aggregateId: string, version: number) =>
  db.transaction((tx) =>
    appendEvent(tx, { topic: 'things', eventType: 'ThingHappened', aggregateId, version, data: { version } }),
  );

describe('the transactional outbox', () => {
  it('publishes committed events with the API envelope, keyed by aggregate id, and marks them published', async () => {
    const { db, stream } = await setUp();
    const received = await collect(stream, 'things');
    const relay = startRelay(db, stream);
    const written = await append(db, 'thing-1', 1);
    await until(() => received.length === 1);
    const message = received[0]!;
    expect(message.key).toBe('thing-1');
    expect(message.headers['event-type']).toBe('ThingHappened');
    const envelope = JSON.parse(message.value) as EventEnvelope;
    expect(envelope).toEqual(written);
    expect(Object.keys(envelope).sort()).toEqual([
      'aggregateId',
      'data',
      'eventId',
      'eventType',
      'occurredAt',
      'version',
    ]);
    await until(async () => (await relay.backlog()) === 0);
  });

  it('publishes nothing for a rolled-back transaction', async () => {
    const { db, stream } = await setUp();
    const received = await collect(stream, 'things');
    const relay = startRelay(db, stream);
    await expect(
      db.transaction(async (tx) => {
        await appendEvent(tx, {
          topic: 'things',
          eventType: 'Doomed',
          aggregateId: 'x',
          version: 1,
          data: {},
        });
        throw new Error('the state change failed');
      }),
    ).rejects.toThrow('the state change failed');
    await append(db, 'y', 1);
    await until(() => received.length === 1);
    // Once the loop has marked 'y' published (publishing it again from outside the loop before
    // that is the at-least-once duplicate consumers absorb), nothing else is left to go out.
    await until(async () => (await relay.backlog()) === 0);
    await relay.publishPending();
    expect(received.map((m) => m.key)).toEqual(['y']);
  });

  it('keeps events while the stream is down and publishes all of them, in order per key, when it returns', async () => {
    const { db, stream } = await setUp();
    const outage = switchable(stream);
    const received = await collect(stream, 'things');
    const relay = startRelay(db, outage.stream);
    outage.up = false;
    for (let version = 1; version <= 20; version += 1) {
      await append(db, `thing-${version % 3}`, version);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received).toEqual([]);
    expect(await relay.backlog()).toBe(20);
    outage.up = true;
    await until(() => received.length === 20);
    for (const key of ['thing-0', 'thing-1', 'thing-2']) {
      const versions = received
        .filter((m) => m.key === key)
        .map((m) => (JSON.parse(m.value) as EventEnvelope).version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
    expect(new Set(received.map((m) => (JSON.parse(m.value) as EventEnvelope).eventId)).size).toBe(20);
    // The relay marks a batch published after the broker has it, so a consumer can see the events
    // a moment before the backlog empties.
    await until(async () => (await relay.backlog()) === 0);
  });

  it('with two relays on one database, one publishes and nothing goes out twice', async () => {
    const { db, stream } = await setUp();
    const received = await collect(stream, 'things');
    startRelay(db, stream);
    startRelay(db, stream);
    for (let version = 1; version <= 30; version += 1) await append(db, 'shared', version);
    await until(() => received.length >= 30);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(received.map((m) => (JSON.parse(m.value) as EventEnvelope).version)).toEqual(
      Array.from({ length: 30 }, (_, i) => i + 1),
    );
  });
});
