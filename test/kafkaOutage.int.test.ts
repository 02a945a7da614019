import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import { startKafka, stopKafka, type KafkaOptions } from '../scripts/kafka.ts';
import { signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

/**
 * A broker outage in the middle of sign-ups. The test runs its own Kafka (another port, its own
 * data directory) so stopping it cannot disturb the shared broker other test files use. It needs
 * what the shared one needs (Java, the cached Kafka jars): where KAFKA_BROKERS is set, and always
 * under CI=true.
 */
const kafkaAvailable = Boolean(process.env['KAFKA_BROKERS']) || process.env['CI'] === 'true';

describe.skipIf(!kafkaAvailable)('with real Kafka, a broker outage during sign-ups', () => {
  let kafka: KafkaOptions;
  let system: TestSystem;

  beforeAll(async () => {
    const port = 29_092 + Math.floor(Math.random() * 500) * 2;
    kafka = { port, controllerPort: port + 1, dataDir: await mkdtemp(join(tmpdir(), 'kafka-outage-')) };
    const { brokers } = await startKafka(kafka);
    system = await startTestSystem({ KAFKA_BROKERS: brokers });
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
    await stopKafka(kafka).catch(() => {});
    if (kafka?.dataDir) await rm(kafka.dataDir, { recursive: true, force: true });
  }, 60_000);

  it('loses no event: every sign-up reaches the topic once the broker is back', async () => {
    const seen = new Map<string, string>(); // eventId -> user id
    const subscription = await system.stream.subscribe({
      groupId: 'outage-counter',
      topics: ['user-events'],
      handle: async (message) => {
        const envelope = JSON.parse(message.value) as EventEnvelope;
        seen.set(envelope.eventId, envelope.aggregateId);
      },
    });
    const waitFor = async (count: number, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (new Set(seen.values()).size < count) {
        if (Date.now() > deadline) throw new Error(`saw ${new Set(seen.values()).size} of ${count} sign-ups`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    };
    try {
      const before = [];
      for (let i = 0; i < 5; i += 1) before.push(await signUp(system, `Before${i}`));
      await waitFor(5, 30_000);

      await stopKafka(kafka);
      const during = [];
      for (let i = 0; i < 10; i += 1) during.push(await signUp(system, `During${i}`));
      const [backlog] = await system.subgraphs.users.db.query<{ count: number }>(
        'SELECT count(*)::int AS count FROM outbox WHERE published_at IS NULL',
      );
      expect(backlog?.count).toBe(10); // waiting in the outbox, not lost

      await startKafka(kafka);
      await waitFor(15, 90_000);
      const published = new Set(seen.values());
      for (const user of [...before, ...during]) expect(published.has(user.id), user.email).toBe(true);
      expect(published.size).toBe(15);
    } finally {
      await subscription.stop();
    }
  }, 180_000);
});
