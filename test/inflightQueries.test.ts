import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from './support/eventually.ts';
import { signUp } from './support/fixtures.ts';
import { startObservedGateway, type ObservedGateway } from './support/startObservedGateway.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';
import { collectLogLines } from './support/collectLogLines.ts';

type LogLine = Record<string, unknown> & { msg?: string; request_id?: string };

let system: TestSystem;
beforeAll(async () => {
  system = await startTestSystem();
});
afterAll(() => system?.stop());

/** A gateway over the test system whose calls to users are counted (and can be held), logs kept. */
async function observedGateway(overrides: Parameters<typeof startObservedGateway>[1] = {}) {
  const logs: LogLine[] = [];
  const observed = await startObservedGateway(
    system,
    { LOG_LEVEL: 'info', ...overrides },
    {
      logDestination: collectLogLines(logs),
    },
  );
  return { observed, logs };
}

function metric(text: string, name: string, labels: Record<string, string> = {}): number {
  const line = text
    .split('\n')
    .find(
      (l) =>
        (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) &&
        Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)),
    );
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const metricsOf = (observed: ObservedGateway) =>
  fetch(new URL('/metrics', observed.url)).then((r) => r.text());

const QUERY = 'query WhoAmI { me { id email name } }';

function post(observed: ObservedGateway, token: string) {
  return fetch(observed.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: QUERY, operationName: 'WhoAmI' }),
  });
}

/**
 * Sends one request and holds its call to users, then `followers` identical ones, and waits until
 * the gateway has them all waiting for the first one's answer; then lets users answer.
 */
async function sendTogether(observed: ObservedGateway, token: string, followers: number) {
  const release = observed.hold('users');
  const callsBefore = observed.calls['users']!;
  const leader = post(observed, token);
  await eventually(
    async () => observed.calls['users']!,
    (calls) => calls === callsBefore + 1,
  );
  const others = Array.from({ length: followers }, () => post(observed, token));
  await eventually(
    async () => metric(await metricsOf(observed), 'gateway_joined_queries_waiting'),
    (waiting) => waiting === followers,
  );
  release();
  return Promise.all([leader, ...others]);
}

describe('identical queries in flight', () => {
  it('are answered together from one execution, each with its own request id, log line and metrics', async () => {
    const customer = await signUp(system, 'Joiner');
    const { observed, logs } = await observedGateway();
    try {
      // The first sight of a text runs on its own: the gateway learns it is a query.
      const first = await post(observed, customer.token);
      expect(first.status).toBe(200);
      const before = await metricsOf(observed);
      const usersCalls = observed.calls['users']!;

      const responses = await sendTogether(observed, customer.token, 4);
      const bodies = await Promise.all(responses.map((r) => r.text()));
      for (const response of responses) expect(response.status).toBe(200);
      expect(JSON.parse(bodies[0]!)).toEqual({
        data: { me: { id: customer.id, email: customer.email, name: 'Joiner' } },
      });
      expect(new Set(bodies).size).toBe(1);
      // One call to users for the five requests.
      expect(observed.calls['users']! - usersCalls).toBe(1);
      const requestIds = responses.map((r) => r.headers.get('x-request-id'));
      expect(new Set(requestIds).size).toBe(5);
      for (const response of responses) {
        expect(response.headers.get('content-type')).toMatch(/^application\/(graphql-response\+)?json/);
      }

      const after = await metricsOf(observed);
      const moved = (name: string, labels: Record<string, string> = {}) =>
        metric(after, name, labels) - metric(before, name, labels);
      expect(moved('graphql_requests_total', { operation: 'WhoAmI', type: 'query', outcome: 'ok' })).toBe(5);
      expect(moved('graphql_request_duration_seconds_count', { operation: 'WhoAmI' })).toBe(5);
      expect(moved('gateway_deduplicated_queries_total')).toBe(4);
      expect(metric(after, 'gateway_joined_queries_waiting')).toBe(0);

      const lines = logs.filter((l) => l.msg === 'graphql operation' && l['operation'] === 'WhoAmI');
      expect(lines).toHaveLength(6);
      for (const line of lines) expect(line['type']).toBe('query');
      expect(new Set(lines.map((l) => l.request_id))).toEqual(
        new Set([first.headers.get('x-request-id'), ...requestIds]),
      );
    } finally {
      await observed.stop();
    }
  });

  it('are answered again afterwards: nothing is cached', async () => {
    const customer = await signUp(system, 'Again');
    const { observed } = await observedGateway();
    try {
      await post(observed, customer.token);
      const usersCalls = observed.calls['users']!;
      await post(observed, customer.token);
      await post(observed, customer.token);
      expect(observed.calls['users']! - usersCalls).toBe(2);
    } finally {
      await observed.stop();
    }
  });

  it("take each request's own rate-limit token: joined requests over the limit are refused with 429", async () => {
    const customer = await signUp(system, 'Limited');
    // Four tokens, next to no refill: the first request and the leader take two.
    const { observed } = await observedGateway({
      RATE_LIMIT_CAPACITY: 4,
      RATE_LIMIT_REFILL_PER_SECOND: 0.001,
    });
    try {
      expect((await post(observed, customer.token)).status).toBe(200);
      const responses = await sendTogether(observed, customer.token, 4);
      const statuses = responses.map((r) => r.status);
      expect(statuses.filter((s) => s === 200)).toHaveLength(3);
      const refused = responses.filter((r) => r.status === 429);
      expect(refused).toHaveLength(2);
      for (const response of refused) {
        const body = (await response.json()) as { errors: { extensions: { code: string } }[] };
        expect(body.errors[0]!.extensions.code).toBe('RATE_LIMITED');
        expect(response.headers.get('retry-after')).toMatch(/^\d+$/);
      }
    } finally {
      await observed.stop();
    }
  });

  it('never join across viewers: each viewer gets its own answer', async () => {
    const ada = await signUp(system, 'Ada');
    const bob = await signUp(system, 'Bob');
    const { observed } = await observedGateway();
    try {
      await post(observed, ada.token);
      const release = observed.hold('users');
      const callsBefore = observed.calls['users']!;
      const answers = [post(observed, ada.token), post(observed, bob.token)];
      await eventually(
        async () => observed.calls['users']!,
        (calls) => calls === callsBefore + 2,
      );
      release();
      const [forAda, forBob] = (await Promise.all(answers.map((a) => a.then((r) => r.json())))) as {
        data: { me: { id: string } };
      }[];
      expect(forAda!.data.me.id).toBe(ada.id);
      expect(forBob!.data.me.id).toBe(bob.id);
    } finally {
      await observed.stop();
    }
  });
});
