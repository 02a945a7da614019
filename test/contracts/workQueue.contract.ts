import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { MessagingError } from '../../lib/messaging/messagingError.ts';
import {
  PermanentJobError,
  type Job,
  type WorkQueue,
  type WorkQueueTopology,
} from '../../lib/messaging/workQueue.ts';

/** How the contract suite gets at one adapter. */
export interface WorkQueueHarness {
  /** A new, unconnected work queue; the suite closes it after each test. */
  create(): WorkQueue | Promise<WorkQueue>;
  /** Deletes what a test declared on the broker, once its work queues are closed. */
  destroy?(topology: WorkQueueTopology): Promise<void>;
  /** Cuts `workQueue`'s connection from the broker's side; only adapters with a connection. */
  dropConnection?(workQueue: WorkQueue): Promise<void>;
}

/**
 * The behaviour every WorkQueue adapter owes its users (lib/messaging/workQueue.ts). Retry
 * delays are tens of milliseconds so the suite stays fast against a real broker too.
 */
export function describeWorkQueueContract(name: string, harness: WorkQueueHarness): void {
  describe(`${name} work queue`, () => {
    const opened: WorkQueue[] = [];
    const declared: WorkQueueTopology[] = [];

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((workQueue) => workQueue.close()));
      for (const topology of declared.splice(0)) await harness.destroy?.(topology);
    });

    async function workQueue(): Promise<WorkQueue> {
      const created = await harness.create();
      opened.push(created);
      return created;
    }

    /** A topology of names no other test (or test run) uses. */
    function topology(retryDelaysMs: number[] = [30, 60]): WorkQueueTopology {
      const suffix = randomUUID().slice(0, 8);
      const created = {
        exchange: `contract.${suffix}`,
        queue: `contract.${suffix}.email`,
        routingKeys: ['notification.*'],
        retryDelaysMs,
      };
      declared.push(created);
      return created;
    }

    it('health() resolves while connected to the broker, and rejects once the queue is closed', async () => {
      const queue = await workQueue();
      await expect(queue.health()).resolves.toBeUndefined();
      await queue.close();
      await expect(queue.health()).rejects.toBeInstanceOf(MessagingError);
    });

    it('a published job is consumed once, with its id, body and headers', async () => {
      const queue = await workQueue();
      const jobs = topology();
      const seen: Job[] = [];
      await queue.consume(jobs, { prefetch: 1, handle: async (job) => void seen.push(job) });

      await queue.publish(jobs.exchange, 'notification.welcome', {
        id: 'job-1',
        body: '{"to":"ada@example.com"}',
        headers: { kind: 'WELCOME', 'trace-id': 'abc' },
      });

      await eventually(() => seen.length === 1);
      await sleep(150); // room for a duplicate to show up
      expect(seen).toEqual([
        {
          id: 'job-1',
          body: '{"to":"ada@example.com"}',
          headers: { kind: 'WELCOME', 'trace-id': 'abc' },
          attempt: 1,
        },
      ]);
    });

    it('a job that fails twice then succeeds is handled three times, with attempts 1, 2, 3 after the retry delays', async () => {
      const queue = await workQueue();
      const jobs = topology([50, 100, 200]);
      const calls: { attempt: number; atMs: number; headers: Record<string, string> }[] = [];
      await queue.consume(jobs, {
        prefetch: 1,
        handle: async (job) => {
          calls.push({ attempt: job.attempt, atMs: performance.now(), headers: job.headers });
          if (job.attempt < 3) throw new Error('SMTP server unavailable');
        },
      });

      await queue.publish(jobs.exchange, 'notification.welcome', {
        id: 'flaky',
        body: 'hi',
        headers: { kind: 'WELCOME' },
      });

      await eventually(() => calls.length === 3);
      await sleep(300); // longer than the next delay: no fourth attempt may come
      expect(calls.map((call) => call.attempt)).toEqual([1, 2, 3]);
      expect(calls.map((call) => call.headers)).toEqual([
        { kind: 'WELCOME' },
        { kind: 'WELCOME' },
        { kind: 'WELCOME' },
      ]);
      const [first, second, third] = calls.map((call) => call.atMs) as [number, number, number];
      // A millisecond of slack: timers may round down. The upper bounds only say "roughly".
      expect(second - first).toBeGreaterThanOrEqual(49);
      expect(second - first).toBeLessThan(1_000);
      expect(third - second).toBeGreaterThanOrEqual(99);
      expect(third - second).toBeLessThan(1_500);
      expect(await queue.deadLetters(jobs)).toEqual([]);
    });

    it('a poison job ends in the DLQ after exactly max attempts with its error in headers, while the others are delivered once each', async () => {
      const queue = await workQueue();
      const jobs = topology([20, 40]); // 3 attempts
      const attempts = new Map<string, number[]>();
      await queue.consume(jobs, {
        prefetch: 2,
        handle: async (job) => {
          attempts.set(job.id, [...(attempts.get(job.id) ?? []), job.attempt]);
          if (job.id === 'poison') throw new Error('template ORDER_CONFIRMED is missing');
        },
      });

      const ids = ['good-1', 'good-2', 'poison', 'good-3', 'good-4', 'good-5'];
      for (const id of ids) {
        await queue.publish(jobs.exchange, 'notification.order', {
          id,
          body: `body of ${id}`,
          headers: { kind: 'ORDER' },
        });
      }

      await eventually(async () => (await queue.deadLetters(jobs)).length === 1);
      await sleep(150); // no attempt after the dead letter
      expect(Object.fromEntries(attempts)).toEqual({
        'good-1': [1],
        'good-2': [1],
        poison: [1, 2, 3],
        'good-3': [1],
        'good-4': [1],
        'good-5': [1],
      });
      const deadLetters = await queue.deadLetters(jobs);
      expect(deadLetters).toEqual([
        {
          id: 'poison',
          body: 'body of poison',
          attempt: 3,
          headers: {
            kind: 'ORDER',
            'x-error': 'template ORDER_CONFIRMED is missing',
            'x-attempts': '3',
            'x-failed-at': expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/) as unknown,
          },
        },
      ]);
      // Reading the DLQ is a peek: the dead letter is still there for operators.
      expect(await queue.deadLetters(jobs)).toHaveLength(1);
    });

    it('a retry comes back to the failing queue only, not to the other queues bound to the exchange', async () => {
      const queue = await workQueue();
      const email = topology([20]);
      const audit = { ...topology([20]), exchange: email.exchange }; // a second queue on the same exchange
      const emailAttempts: number[] = [];
      const auditAttempts: number[] = [];
      await queue.consume(email, {
        prefetch: 1,
        handle: async (job) => {
          emailAttempts.push(job.attempt);
          if (job.attempt === 1) throw new Error('SMTP server unavailable');
        },
      });
      await queue.consume(audit, {
        prefetch: 1,
        handle: async (job) => void auditAttempts.push(job.attempt),
      });

      await queue.publish(email.exchange, 'notification.welcome', { id: 'fan-out', body: '' });

      await eventually(() => emailAttempts.length === 2 && auditAttempts.length === 1);
      await sleep(150);
      expect(emailAttempts).toEqual([1, 2]);
      expect(auditAttempts).toEqual([1]);
    });

    it('a permanent error sends the job to the DLQ at once, without retries', async () => {
      const queue = await workQueue();
      const jobs = topology([20, 40]);
      const handled: string[] = [];
      await queue.consume(jobs, {
        prefetch: 1,
        handle: async (job) => {
          handled.push(job.id);
          if (job.id === 'malformed') throw new PermanentJobError('body is not JSON');
          if (job.id === 'refused') throw new MessagingError('recipient refused', { retriable: false });
        },
      });

      for (const id of ['malformed', 'refused', 'fine']) {
        await queue.publish(jobs.exchange, 'notification.welcome', { id, body: id });
      }

      await eventually(async () => (await queue.deadLetters(jobs)).length === 2);
      await sleep(150); // longer than both retry delays
      expect(handled.sort()).toEqual(['fine', 'malformed', 'refused']);
      const deadLetters = (await queue.deadLetters(jobs)).sort((a, b) => a.id.localeCompare(b.id));
      expect(
        deadLetters.map(({ id, attempt, headers }) => ({
          id,
          attempt,
          error: headers['x-error'],
          attempts: headers['x-attempts'],
        })),
      ).toEqual([
        { id: 'malformed', attempt: 1, error: 'body is not JSON', attempts: '1' },
        { id: 'refused', attempt: 1, error: 'recipient refused', attempts: '1' },
      ]);
    });

    it('prefetch limits how many jobs are in progress at once', async () => {
      const queue = await workQueue();
      const jobs = topology();
      let inProgress = 0;
      let most = 0;
      const done: string[] = [];
      await queue.consume(jobs, {
        prefetch: 2,
        handle: async (job) => {
          inProgress++;
          most = Math.max(most, inProgress);
          await sleep(40);
          inProgress--;
          done.push(job.id);
        },
      });

      for (let i = 0; i < 6; i++) {
        await queue.publish(jobs.exchange, 'notification.welcome', { id: `job-${i}`, body: '' });
      }

      await eventually(() => done.length === 6);
      expect(most).toBe(2);
    });

    it('stop() waits for the job in progress, and later jobs wait in the queue for the next consumer', async () => {
      const queue = await workQueue();
      const jobs = topology();
      const release = deferred();
      const started = deferred();
      const finished: string[] = [];
      const consumer = await queue.consume(jobs, {
        prefetch: 1,
        handle: async (job) => {
          started.resolve();
          await release.promise;
          finished.push(job.id);
        },
      });
      await queue.publish(jobs.exchange, 'notification.welcome', { id: 'slow', body: '' });
      await started.promise;

      let stopped = false;
      const stopping = consumer.stop().then(() => {
        stopped = true;
      });
      await sleep(100);
      expect(stopped).toBe(false);
      release.resolve();
      await stopping;
      expect(finished).toEqual(['slow']);
      await consumer.stop(); // idempotent

      await queue.publish(jobs.exchange, 'notification.welcome', { id: 'next', body: '' });
      await sleep(100);
      expect(finished).toEqual(['slow']);
      const later: string[] = [];
      await queue.consume(jobs, { prefetch: 1, handle: async (job) => void later.push(job.id) });
      await eventually(() => later.length === 1);
      await sleep(100);
      // 'slow' was acknowledged before stop() resolved: it does not come back.
      expect(later).toEqual(['next']);
    });

    it('publish to a declared topology resolves once confirmed; unroutable jobs and unknown exchanges are refused', async () => {
      const queue = await workQueue();
      const jobs = topology();
      await queue.declare(jobs);
      await queue.declare(jobs); // idempotent

      await expect(
        queue.publish(jobs.exchange, 'notification.welcome', { id: 'first', body: '1' }),
      ).resolves.toBeUndefined();
      const unroutable = queue.publish(jobs.exchange, 'invoice.paid', { id: 'lost', body: '' });
      await expect(unroutable).rejects.toBeInstanceOf(MessagingError);
      await expect(unroutable).rejects.toMatchObject({ retriable: false });
      const unknownExchange = queue.publish(`${jobs.exchange}.missing`, 'notification.welcome', {
        id: 'lost',
        body: '',
      });
      await expect(unknownExchange).rejects.toBeInstanceOf(MessagingError);
      await expect(unknownExchange).rejects.toMatchObject({ retriable: false });

      // The refusals leave the work queue usable, and the confirmed job waited for a consumer.
      await queue.publish(jobs.exchange, 'notification.welcome', { id: 'second', body: '2' });
      const seen: string[] = [];
      await queue.consume(jobs, { prefetch: 1, handle: async (job) => void seen.push(job.id) });
      await eventually(() => seen.length === 2);
      expect(seen).toEqual(['first', 'second']);
    });

    it('close() waits for the job in progress, is idempotent, and the closed work queue refuses work', async () => {
      const queue = await workQueue();
      const jobs = topology();
      const release = deferred();
      const started = deferred();
      let finished = false;
      await queue.consume(jobs, {
        prefetch: 1,
        handle: async () => {
          started.resolve();
          await release.promise;
          finished = true;
        },
      });
      await queue.publish(jobs.exchange, 'notification.welcome', { id: 'slow', body: '' });
      await started.promise;

      const first = queue.close();
      const second = queue.close();
      await sleep(100);
      expect(finished).toBe(false);
      release.resolve();
      await Promise.all([first, second]);
      expect(finished).toBe(true);
      await expect(queue.close()).resolves.toBeUndefined();

      const refused = queue.publish(jobs.exchange, 'notification.welcome', { id: 'late', body: '' });
      await expect(refused).rejects.toBeInstanceOf(MessagingError);
      await expect(refused).rejects.toMatchObject({ retriable: false });
      await expect(queue.consume(jobs, { prefetch: 1, handle: async () => {} })).rejects.toMatchObject({
        retriable: false,
      });
    });

    const dropConnection = harness.dropConnection?.bind(harness);
    if (dropConnection) {
      it('after the broker drops the connection, it reconnects and consumption resumes', async () => {
        const queue = await workQueue();
        const jobs = topology();
        const seen: string[] = [];
        await queue.consume(jobs, { prefetch: 1, handle: async (job) => void seen.push(job.id) });
        await queue.publish(jobs.exchange, 'notification.welcome', { id: 'before', body: '' });
        await eventually(() => seen.length === 1);

        await dropConnection(queue);

        // A publisher retries what is refused as retriable while the connection is away.
        await eventually(async () => {
          try {
            await queue.publish(jobs.exchange, 'notification.welcome', { id: 'after', body: '' });
            return true;
          } catch (error) {
            expect(error).toMatchObject({ retriable: true });
            return false;
          }
        }, 10_000);
        await eventually(() => seen.includes('after'), 10_000);
        expect(seen).toEqual(['before', 'after']);
      });
    }
  });
}

/** Polls `check` until it holds, failing after `timeoutMs`. */
async function eventually(check: () => boolean | Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
