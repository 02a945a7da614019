import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { EventStream, OutgoingMessage, StreamMessage } from '../../lib/messaging/eventStream.ts';
import { MessagingError } from '../../lib/messaging/messagingError.ts';

export interface EventStreamContractOptions {
  /**
   * How long to keep watching for messages that must not arrive (duplicates, redeliveries of
   * committed messages) once the expected ones are in. Default 1 000 ms.
   */
  settleMs?: number;
}

/** Long enough for a Kafka group to join or rebalance (seconds), short of the test timeout. */
const WAIT_MS = 20_000;

const unique = (prefix: string) => `${prefix}-${randomUUID().slice(0, 8)}`;

async function waitFor(condition: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** A handle that records what it is given. */
function recorder() {
  const messages: StreamMessage[] = [];
  return {
    messages,
    values: () => messages.map((message) => message.value),
    handle: (message: StreamMessage) => {
      messages.push(message);
      return Promise.resolve();
    },
  };
}

const numbered = (prefix: string, count: number, keys = count): OutgoingMessage[] =>
  Array.from({ length: count }, (_, index) => ({ key: `key-${index % keys}`, value: `${prefix}-${index}` }));

/**
 * The event-stream port's contract (lib/messaging/eventStream.ts), run against every adapter so
 * the embedded default never drifts from Kafka. Every test uses its own topics and groups.
 */
export function describeEventStreamContract(
  name: string,
  factory: () => Promise<EventStream>,
  options: EventStreamContractOptions = {},
): void {
  const settleMs = options.settleMs ?? 1_000;

  describe(`${name} event stream`, () => {
    let stream: EventStream;
    beforeEach(async () => {
      stream = await factory();
    });
    afterEach(async () => {
      await stream.close();
    });

    it('health() resolves while the broker answers, and rejects once the stream is closed', async () => {
      await expect(stream.health()).resolves.toBeUndefined();
      await stream.close();
      await expect(stream.health()).rejects.toBeInstanceOf(MessagingError);
    });

    it('delivers a published message with its key, value and headers', async () => {
      const topic = unique('contract-payload');
      await stream.publish(topic, [
        {
          key: 'order-1',
          value: '{"eventType":"OrderPlaced","data":{"total":"12.50 €"}}',
          headers: { 'event-type': 'OrderPlaced', 'trace-id': 'abc-123' },
        },
        { key: 'order-2', value: 'no headers' },
      ]);

      const seen = recorder();
      await stream.subscribe({ groupId: unique('group'), topics: [topic], handle: seen.handle });
      await waitFor(() => seen.messages.length >= 2, 'both messages');

      const [withHeaders, withoutHeaders] = ['order-1', 'order-2'].map((key) =>
        seen.messages.find((message) => message.key === key),
      );
      expect(withHeaders).toMatchObject({
        topic,
        key: 'order-1',
        value: '{"eventType":"OrderPlaced","data":{"total":"12.50 €"}}',
        headers: { 'event-type': 'OrderPlaced', 'trace-id': 'abc-123' },
      });
      expect(withHeaders?.offset).toMatch(/^\d+$/);
      expect(Number.isInteger(withHeaders?.partition)).toBe(true);
      expect(withoutHeaders).toMatchObject({ topic, key: 'order-2', value: 'no headers', headers: {} });
    });

    it('delivers messages with the same key in the order they were published', async () => {
      const topic = unique('contract-order');
      const keys = ['a', 'b', 'c', 'd', 'e'];
      // 50 messages over 5 keys, interleaved, in 5 separate publishes.
      for (let batch = 0; batch < 5; batch += 1) {
        await stream.publish(
          topic,
          keys.flatMap((key) => [0, 1].map((i) => ({ key, value: `${key}:${batch * 2 + i}` }))),
        );
      }

      const seen = recorder();
      await stream.subscribe({ groupId: unique('group'), topics: [topic], handle: seen.handle });
      await waitFor(() => seen.messages.length >= 50, '50 messages');

      for (const key of keys) {
        const ofKey = seen.messages.filter((message) => message.key === key);
        expect(ofKey.map((message) => Number(message.value.split(':')[1]))).toEqual(
          Array.from({ length: 10 }, (_, i) => i),
        );
        expect(new Set(ofKey.map((message) => message.partition)).size).toBe(1);
        const offsets = ofKey.map((message) => BigInt(message.offset));
        expect(offsets).toEqual([...offsets].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)));
      }
    });

    it('reports the group’s lag per partition, down to 0 once everything is handled', async () => {
      const topic = unique('contract-lag');
      await stream.publish(
        topic,
        Array.from({ length: 6 }, (_, i) => ({ key: 'k', value: String(i) })),
      );
      const lags: { topic: string; partition: number; messages: number }[] = [];
      const seen = recorder();
      await stream.subscribe({
        groupId: unique('group'),
        topics: [topic],
        handle: seen.handle,
        onLag: (lag) => lags.push(lag),
      });
      await waitFor(() => seen.messages.length >= 6, '6 messages');
      await waitFor(() => lags.length > 0, 'a lag report');
      const partition = seen.messages[0]!.partition;
      expect(lags.every((lag) => lag.topic === topic && lag.partition === partition)).toBe(true);
      expect(lags.every((lag) => lag.messages >= 0 && lag.messages < 6)).toBe(true);
      expect(lags.at(-1)?.messages).toBe(0);
    });

    it('delivers every message to every consumer group', async () => {
      const topic = unique('contract-groups');
      const billing = recorder();
      const analytics = recorder();
      await stream.subscribe({ groupId: unique('billing'), topics: [topic], handle: billing.handle });
      await stream.subscribe({ groupId: unique('analytics'), topics: [topic], handle: analytics.handle });

      await stream.publish(topic, numbered('m', 20, 10));
      await waitFor(
        () => billing.messages.length >= 20 && analytics.messages.length >= 20,
        'both groups to get 20 messages',
      );

      const expected = numbered('m', 20).map((message) => message.value);
      expect(new Set(billing.values())).toEqual(new Set(expected));
      expect(new Set(analytics.values())).toEqual(new Set(expected));
    });

    it('splits the partitions between the members of a group, handling each message once', async () => {
      const topic = unique('contract-split');
      const groupId = unique('group');
      const first = recorder();
      const second = recorder();
      await stream.subscribe({ groupId, topics: [topic], handle: first.handle });
      // Resolves once the group has settled with both members (on Kafka, after the rebalance).
      await stream.subscribe({ groupId, topics: [topic], handle: second.handle });

      // 60 distinct keys: every partition gets some, so both members get work.
      const published = numbered('m', 60);
      await stream.publish(topic, published);
      const handled = () => [...first.values(), ...second.values()];
      await waitFor(() => new Set(handled()).size >= 60, 'all 60 messages');
      await sleep(settleMs);

      expect(new Set(handled())).toEqual(new Set(published.map((message) => message.value)));
      // With a stable membership nothing is handled twice, by the same member or the other.
      expect(handled()).toHaveLength(60);
      expect(first.messages.length).toBeGreaterThan(0);
      expect(second.messages.length).toBeGreaterThan(0);
      const partitionsOf = (messages: StreamMessage[]) =>
        new Set(messages.map((message) => message.partition));
      const shared = [...partitionsOf(first.messages)].filter((p) => partitionsOf(second.messages).has(p));
      expect(shared).toEqual([]);
    });

    it('hands the partitions of a member that stops to the members that remain', async () => {
      const topic = unique('contract-handover');
      const groupId = unique('group');
      const staying = recorder();
      const leaving = recorder();
      await stream.subscribe({ groupId, topics: [topic], handle: staying.handle });
      const leaver = await stream.subscribe({ groupId, topics: [topic], handle: leaving.handle });

      const before = numbered('before', 30);
      await stream.publish(topic, before);
      const handled = () => new Set([...staying.values(), ...leaving.values()]);
      await waitFor(() => before.every((message) => handled().has(message.value)), 'the first 30 messages');
      expect(leaving.messages.length).toBeGreaterThan(0);

      await leaver.stop();
      const after = numbered('after', 30);
      await stream.publish(topic, after);
      // The member that stayed now owns every partition. Across the rebalance a message may be
      // handled again (at least once), but none may be lost.
      await waitFor(
        () => after.every((message) => staying.values().includes(message.value)),
        'the remaining member to get all 30 later messages',
      );
      expect(leaving.values().some((value) => value.startsWith('after'))).toBe(false);
    });

    it('delivers a message again when its handle rejects, before any later message of its key', async () => {
      const topic = unique('contract-redelivery');
      const attempts: { value: string; offset: string; at: number }[] = [];
      await stream.subscribe({
        groupId: unique('group'),
        topics: [topic],
        handle: (message) => {
          attempts.push({ value: message.value, offset: message.offset, at: Date.now() });
          const failures = attempts.filter((attempt) => attempt.value === 'first').length;
          return message.value === 'first' && failures <= 2
            ? Promise.reject(new Error('the database is away'))
            : Promise.resolve();
        },
      });

      await stream.publish(topic, [
        { key: 'order-7', value: 'first' },
        { key: 'order-7', value: 'second' },
        { key: 'order-7', value: 'third' },
      ]);
      await waitFor(() => attempts.some((attempt) => attempt.value === 'third'), 'the third message');
      await sleep(settleMs);

      expect(attempts.map((attempt) => attempt.value)).toEqual([
        'first',
        'first',
        'first',
        'second',
        'third',
      ]);
      const firsts = attempts.filter((attempt) => attempt.value === 'first');
      expect(new Set(firsts.map((attempt) => attempt.offset)).size).toBe(1);
      // Redelivered after a pause, not in a hot loop.
      for (let i = 1; i < firsts.length; i += 1) {
        expect((firsts[i]?.at ?? 0) - (firsts[i - 1]?.at ?? 0)).toBeGreaterThanOrEqual(50);
      }
    });

    it('resumes a group after its last committed message when it subscribes again', async () => {
      const topic = unique('contract-resume');
      const groupId = unique('group');
      const firstRun = recorder();
      const subscription = await stream.subscribe({ groupId, topics: [topic], handle: firstRun.handle });
      const before = numbered('before', 10, 5);
      await stream.publish(topic, before);
      await waitFor(() => firstRun.messages.length >= 10, 'the first 10 messages');
      await subscription.stop();

      // Published while the group has no member: kept for it.
      const after = numbered('after', 10, 5);
      await stream.publish(topic, after);
      const secondRun = recorder();
      await stream.subscribe({ groupId, topics: [topic], handle: secondRun.handle });
      await waitFor(() => secondRun.messages.length >= 10, 'the 10 later messages');
      await sleep(settleMs);

      expect(new Set(firstRun.values())).toEqual(new Set(before.map((message) => message.value)));
      expect([...secondRun.values()].sort()).toEqual(after.map((message) => message.value).sort());
    });

    it('starts a new group at the end of the topic when fromBeginning is false', async () => {
      const topic = unique('contract-latest');
      await stream.publish(topic, [{ key: 'k', value: 'old' }]);
      const seen = recorder();
      await stream.subscribe({
        groupId: unique('group'),
        topics: [topic],
        fromBeginning: false,
        handle: seen.handle,
      });

      // Kafka fixes a new member's starting offset on its first fetch, shortly after subscribe()
      // resolves; keep publishing until a new message arrives rather than race that.
      for (let i = 0; seen.messages.length === 0; i += 1) {
        if (i * 250 > WAIT_MS) throw new Error('no new message arrived');
        await stream.publish(topic, [{ key: 'k', value: `new-${i}` }]);
        await sleep(250);
      }
      await sleep(settleMs);

      expect(seen.values().length).toBeGreaterThan(0);
      expect(seen.values().every((value) => value.startsWith('new-'))).toBe(true);
    });

    it('stop() waits for the message in progress, which stays committed', async () => {
      const topic = unique('contract-stop');
      const groupId = unique('group');
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      const events: string[] = [];
      const subscription = await stream.subscribe({
        groupId,
        topics: [topic],
        handle: async (message) => {
          events.push(`start ${message.value}`);
          await released;
          events.push(`end ${message.value}`);
        },
      });
      await stream.publish(topic, [{ key: 'k', value: 'slow' }]);
      await waitFor(() => events.includes('start slow'), 'the handle to start');

      const stopped = subscription.stop().then(() => events.push('stopped'));
      const stoppedAgain = subscription.stop().then(() => events.push('stopped again'));
      await sleep(300);
      expect(events).toEqual(['start slow']);
      release();
      await Promise.all([stopped, stoppedAgain]);
      expect(events.slice(0, 2)).toEqual(['start slow', 'end slow']);
      expect(events).toContain('stopped');

      // The handled message was committed: the group's next member does not get it again.
      const next = recorder();
      await stream.subscribe({ groupId, topics: [topic], handle: next.handle });
      await stream.publish(topic, [{ key: 'k', value: 'next' }]);
      await waitFor(() => next.values().includes('next'), 'the next message');
      await sleep(settleMs);
      expect(next.values()).toEqual(['next']);
    });

    it('stop() during redeliveries leaves the failing message to the next member of the group', async () => {
      const topic = unique('contract-stop-failing');
      const groupId = unique('group');
      let attempts = 0;
      const failing = await stream.subscribe({
        groupId,
        topics: [topic],
        handle: () => {
          attempts += 1;
          return Promise.reject(new Error('the database is away'));
        },
      });
      await stream.publish(topic, [{ key: 'k', value: 'stuck' }]);
      await waitFor(() => attempts >= 1, 'a first attempt');
      // Must not wait for a handle that keeps failing.
      await failing.stop();

      const next = recorder();
      await stream.subscribe({ groupId, topics: [topic], handle: next.handle });
      await waitFor(() => next.messages.length >= 1, 'the uncommitted message');
      expect(next.values()).toEqual(['stuck']);
    });

    it('close() stops every subscription and can be called again', async () => {
      const topic = unique('contract-close');
      const seen = recorder();
      const subscription = await stream.subscribe({
        groupId: unique('group'),
        topics: [topic],
        handle: seen.handle,
      });
      await stream.publish(topic, [{ key: 'k', value: 'before close' }]);
      await waitFor(() => seen.messages.length >= 1, 'the message');

      await Promise.all([stream.close(), stream.close()]);
      await stream.close();
      await subscription.stop();

      const publishing = stream.publish(topic, [{ key: 'k', value: 'after close' }]);
      await expect(publishing).rejects.toBeInstanceOf(MessagingError);
      await expect(publishing).rejects.toMatchObject({ retriable: false });
      await expect(
        stream.subscribe({ groupId: unique('group'), topics: [topic], handle: seen.handle }),
      ).rejects.toBeInstanceOf(MessagingError);
      expect(seen.values()).toEqual(['before close']);
    });
  });
}
