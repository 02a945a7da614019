import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventEnvelope } from '../lib/messaging/envelope.ts';
import type { StreamMessage } from '../lib/messaging/eventStream.ts';
import type { Mailer, Email } from '../subgraphs/notifications/src/mailer.ts';
import { emailTopology } from '../subgraphs/notifications/src/notificationWorker.ts';
import { signUp } from './support/fixtures.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { eventually } from './support/eventually.ts';

/** The SMTP server stands outside the system: a fake that records, and refuses "poison" addresses. */
function fakeMailer() {
  const sent: Email[] = [];
  const mailer: Mailer = {
    send(email) {
      if (email.to.startsWith('poison')) return Promise.reject(new Error('550 mailbox unavailable'));
      sent.push(email);
      return Promise.resolve();
    },
    close() {},
  };
  return { mailer, sent, sentTo: (to: string) => sent.filter((e) => e.to === to).length };
}

const RETRY_DELAYS_MS = [20, 40];
const mail = fakeMailer();
let system: TestSystem;

beforeAll(async () => {
  system = await startTestSystem(
    { NOTIFICATION_RETRY_DELAYS_MS: RETRY_DELAYS_MS.join(',') },
    { mailer: mail.mailer },
  );
});
afterAll(() => system?.stop());

interface Notification {
  id: string;
  kind: string;
  subject: string;
  status: string;
  attempts: number;
  deliveredAt: string | null;
}

async function notificationsOf(token: string): Promise<Notification[]> {
  const response = await system.graphql<{ me: { notifications: Notification[] } }>(
    '{ me { notifications { id kind subject status attempts deliveredAt } } }',
    {},
    token,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.me.notifications;
}

describe('notifications', () => {
  it('a new user gets a WELCOME notification, delivered once and shown as SENT', async () => {
    const user = await signUp(system, 'Welcome');
    const [notification] = await eventually(
      () => notificationsOf(user.token),
      (list) => list[0]?.status === 'SENT',
    );
    expect(notification).toMatchObject({ kind: 'WELCOME', subject: 'Welcome, Welcome!', attempts: 1 });
    expect(notification?.deliveredAt).toBeTruthy();
    expect(mail.sentTo(user.email)).toBe(1);
  });

  it('a poison notification is dead-lettered after exactly the configured attempts; the others go out once each', async () => {
    const poison = await signUp(system, 'Poison');
    const others = await Promise.all([signUp(system, 'Other'), signUp(system, 'Another')]);
    const [failed] = await eventually(
      () => notificationsOf(poison.token),
      (list) => list[0]?.status === 'FAILED',
    );
    expect(failed?.attempts).toBe(RETRY_DELAYS_MS.length + 1);
    const dead = await eventually(
      () => system.queue.deadLetters(emailTopology(RETRY_DELAYS_MS)),
      (jobs) => jobs.some((job) => job.id === failed?.id),
    );
    const letter = dead.find((job) => job.id === failed?.id);
    expect(letter?.headers['x-attempts']).toBe(String(RETRY_DELAYS_MS.length + 1));
    expect(letter?.headers['x-error']).toMatch(/mailbox unavailable/);
    for (const other of others) {
      await eventually(
        () => notificationsOf(other.token),
        (list) => list[0]?.status === 'SENT',
      );
      expect(mail.sentTo(other.email)).toBe(1);
    }
  });

  it('a redelivered sign-up event and a duplicate job send nothing twice', async () => {
    const user = await signUp(system, 'Twice');
    const [first] = await eventually(
      () => notificationsOf(user.token),
      (list) => list[0]?.status === 'SENT',
    );
    const envelope: EventEnvelope = {
      eventId: first!.id,
      eventType: 'UserSignedUp',
      occurredAt: new Date().toISOString(),
      aggregateId: user.id,
      version: 1,
      data: { userId: user.id, email: user.email, name: 'Twice' },
    };
    await system.stream.publish('user-events', [{ key: user.id, value: JSON.stringify(envelope) }]);
    await system.queue.publish('notifications', 'email.welcome', {
      id: first!.id,
      body: JSON.stringify({ notificationId: first!.id }),
    });
    // A later sign-up's notification going out shows both duplicates have been through the pipes.
    const later = await signUp(system, 'Later');
    await eventually(
      () => notificationsOf(later.token),
      (list) => list[0]?.status === 'SENT',
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await notificationsOf(user.token)).toHaveLength(1);
    expect(mail.sentTo(user.email)).toBe(1);
  });

  it('a duplicated order-events delivery notifies the customer once', async () => {
    const user = await signUp(system, 'Buyer');
    const orderEvent = (orderId: string): EventEnvelope => ({
      eventId: randomUUID(),
      eventType: 'OrderConfirmed',
      occurredAt: new Date().toISOString(),
      aggregateId: orderId,
      version: 4,
      data: { orderId, userId: user.id, email: user.email, items: [], totalCents: 1_250 },
    });
    const confirmed = JSON.stringify(orderEvent(randomUUID()));
    // One key, so one partition: the later order's event is handled after both copies.
    await system.stream.publish('order-events', [
      { key: user.id, value: confirmed },
      { key: user.id, value: confirmed },
      { key: user.id, value: JSON.stringify(orderEvent(randomUUID())) },
    ]);
    const isOrderConfirmed = (n: Notification) => n.kind === 'ORDER_CONFIRMED';
    const list = await eventually(
      () => notificationsOf(user.token),
      (all) => all.filter(isOrderConfirmed).filter((n) => n.status === 'SENT').length === 2,
    );
    expect(list.filter(isOrderConfirmed)).toHaveLength(2);
    expect(mail.sent.filter((e) => e.to === user.email && /confirmed/.test(e.subject))).toHaveLength(2);
  });

  it('an order event without an email reaches the customer at the address learnt from their sign-up', async () => {
    const user = await signUp(system, 'Unaddressed');
    await eventually(
      () => notificationsOf(user.token),
      (list) => list[0]?.status === 'SENT', // the sign-up has been through: its address is known
    );
    const orderId = randomUUID();
    const cancelled: EventEnvelope = {
      eventId: randomUUID(),
      eventType: 'OrderCancelled',
      occurredAt: new Date().toISOString(),
      aggregateId: orderId,
      version: 2,
      // Cancelled before the saga read the user's email (users unavailable past its deadline).
      data: {
        orderId,
        userId: user.id,
        email: null,
        items: [],
        totalCents: 900,
        reason: 'users unavailable',
      },
    };
    await system.stream.publish('order-events', [{ key: orderId, value: JSON.stringify(cancelled) }]);
    const list = await eventually(
      () => notificationsOf(user.token),
      (all) => all.some((n) => n.kind === 'ORDER_CANCELLED' && n.status === 'SENT'),
    );
    expect(list.find((n) => n.kind === 'ORDER_CANCELLED')?.subject).toBe(
      `Your order ${orderId} was cancelled`,
    );
    expect(mail.sent.filter((e) => e.to === user.email && /cancelled/.test(e.subject))).toHaveLength(1);
  });

  it('an order event for a user nobody knows is skipped, not dead-lettered, and the consumer moves on', async () => {
    const deadLetters: StreamMessage[] = [];
    const subscription = await system.stream.subscribe({
      groupId: `order-dlq-reader-${randomUUID()}`,
      topics: ['order-events.dlq'],
      handle: async (message) => {
        deadLetters.push(message);
      },
    });
    try {
      const stranger = randomUUID();
      const orderId = randomUUID();
      const user = await signUp(system, 'Next');
      const event = (eventType: string, userId: string, email: string | null): EventEnvelope => ({
        eventId: randomUUID(),
        eventType,
        occurredAt: new Date().toISOString(),
        aggregateId: orderId,
        version: 2,
        data: {
          orderId,
          userId,
          email,
          items: [],
          totalCents: 100,
          reason: `user ${stranger} does not exist`,
        },
      });
      // One key: the known user's event is handled after the stranger's.
      await system.stream.publish('order-events', [
        { key: orderId, value: JSON.stringify(event('OrderCancelled', stranger, null)) },
        { key: orderId, value: JSON.stringify(event('OrderConfirmed', user.id, user.email)) },
      ]);
      await eventually(
        () => notificationsOf(user.token),
        (list) => list.some((n) => n.kind === 'ORDER_CONFIRMED' && n.status === 'SENT'),
      );
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(deadLetters).toEqual([]);
      expect(mail.sent.filter((e) => e.subject.includes(orderId) && e.to !== user.email)).toEqual([]);
    } finally {
      await subscription.stop();
    }
  });

  it('a malformed event goes to user-events.dlq with the error in its headers, and the consumer moves on', async () => {
    const deadLetters: StreamMessage[] = [];
    const subscription = await system.stream.subscribe({
      groupId: `dlq-reader-${randomUUID()}`,
      topics: ['user-events.dlq'],
      handle: async (message) => {
        deadLetters.push(message);
      },
    });
    try {
      await system.stream.publish('user-events', [{ key: 'garbage', value: '{"not": "an envelope"' }]);
      const user = await signUp(system, 'After');
      await eventually(
        () => notificationsOf(user.token),
        (list) => list[0]?.status === 'SENT',
      );
      const [letter] = await eventually(
        () => Promise.resolve(deadLetters.filter((m) => m.key === 'garbage')),
        (list) => list.length === 1,
      );
      expect(letter?.headers['x-error']).toMatch(/malformed event/);
      expect(letter?.headers['x-original-topic']).toBe('user-events');
    } finally {
      await subscription.stop();
    }
  });

  it("another user's notifications are FORBIDDEN", async () => {
    const alice = await signUp(system, 'Alice');
    const bob = await signUp(system, 'Bob');
    const response = await system.graphql(
      'query($id: ID!) { user(id: $id) { notifications { id } } }',
      { id: alice.id },
      bob.token,
    );
    expect(response.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
  });
});
