import { request as httpRequest, type IncomingMessage } from 'node:http';
import { createClient as createSseClient } from 'graphql-sse';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { eventually } from '../support/eventually.ts';
import {
  collect,
  startSubscriptionTestbed,
  type SubscriptionTestbed,
} from '../support/startSubscriptionTestbed.ts';
import { collectLogLines } from '../support/collectLogLines.ts';

const ADMIN = { id: 'u-admin', role: 'ADMIN' } as const;
const ALICE = { id: 'u-alice', role: 'CUSTOMER' } as const;
const BOB = { id: 'u-bob', role: 'CUSTOMER' } as const;

interface Tick {
  ticks: {
    n: number;
    viewerId: string | null;
    widget: { id: string; name: string; viewedBy: string | null };
  };
}
const TICKS = `subscription Ticks($channel: String!) {
  ticks(channel: $channel) { n viewerId widget { id name viewedBy } }
}`;

let bed: SubscriptionTestbed;
beforeAll(async () => {
  bed = await startSubscriptionTestbed({
    SUBSCRIPTION_CONNECTION_INIT_TIMEOUT_MS: '300',
    SUBSCRIPTION_MAX_PER_CONNECTION: '3',
    SUBSCRIPTION_SEND_BUFFER_BYTES: String(256 * 1024),
  });
});
afterAll(() => bed?.stop());

/** Until `channel` of the testbed (the shared one unless given) has `listeners` upstream subscriptions. */
const upstreamReady = (channel: string, listeners = 1, testbed: SubscriptionTestbed = bed) =>
  eventually(
    async () => testbed.channel(channel).listeners,
    (n) => n === listeners,
  );

describe('subscriptions through the gateway over graphql-ws', () => {
  it('each event carries the entity fields of another subgraph, fetched as the subscriber', async () => {
    const alice = bed.client(await bed.token(ALICE));
    const ticks = collect<Tick>(alice, TICKS, { channel: 'rest' });
    await upstreamReady('rest');
    for (let n = 1; n <= 5; n += 1) bed.channel('rest').publish({ n, channel: 'rest', widgetId: `w${n}` });

    await eventually(
      async () => ticks.events.length,
      (count) => count === 5,
    );
    expect(ticks.events.map((e) => e.data?.ticks.n)).toEqual([1, 2, 3, 4, 5]);
    expect(ticks.events[2]).toEqual({
      data: {
        ticks: { n: 3, viewerId: ALICE.id, widget: { id: 'w3', name: 'Widget w3', viewedBy: ALICE.id } },
      },
    });
    expect(ticks.errors).toEqual([]);
    ticks.dispose();
    await upstreamReady('rest', 0);
  });

  it('fields hidden from the public API cannot be subscribed to', async () => {
    const alice = bed.client(await bed.token(ALICE));
    const hidden = collect(alice, 'subscription { ticks(channel: "x") { internalNote } }');
    await eventually(
      async () => hidden.errors.length,
      (n) => n === 1,
    );
    expect(JSON.stringify(hidden.errors)).toMatch(/internalNote/);
  });

  it('applies the operation limits of HTTP operations, before any subgraph is asked (OPERATION_LIMIT)', async () => {
    const alice = bed.client(await bed.token(ALICE));
    const aliases = Array.from({ length: 31 }, (_, i) => `a${i}: n`).join(' ');
    const before = bed.ticker.subscribeCount;
    const tooMany = collect(alice, `subscription { ticks(channel: "limits") { ${aliases} } }`);
    await eventually(
      async () => tooMany.errors.length,
      (n) => n === 1,
    );
    expect(JSON.stringify(tooMany.errors)).toMatch(/OPERATION_LIMIT/);
    expect(bed.ticker.subscribeCount).toBe(before);
  });

  it('200 identical subscribers share one upstream subscription, and leaving ends it', async () => {
    const token = await bed.token(ALICE);
    const before = bed.ticker.subscribeCount;
    const subscribers = Array.from({ length: 200 }, () =>
      collect<Tick>(bed.client(token), TICKS, { channel: 'shared' }),
    );
    await upstreamReady('shared');
    // Subscribers join while ticks go out; each must end up receiving them.
    let n = 0;
    await eventually(
      async () => {
        n += 1;
        bed.channel('shared').publish({ n, channel: 'shared', widgetId: 'w1' });
        return subscribers.filter((s) => s.events.length > 0).length;
      },
      (count) => count === 200,
      { intervalMs: 200 },
    );
    expect(subscribers.every((s) => s.events.every((e) => e.data?.ticks.widget.name === 'Widget w1'))).toBe(
      true,
    );
    expect(bed.ticker.subscribeCount - before).toBe(1);
    // The same fan-out, as an operator sees it on /metrics.
    const metrics = await fetch(new URL('/metrics', bed.url)).then((r) => r.text());
    expect(metrics).toMatch(/^gateway_upstream_subscriptions\{[^}]*\} 1$/m);
    expect(metrics).toMatch(/^gateway_subscriptions\{[^}]*\} 200$/m);

    for (const subscriber of subscribers) subscriber.dispose();
    await upstreamReady('shared', 0);
  });

  it('a burst of events reaches every subscriber whole, once each and in order', async () => {
    // Events published back to back reach the gateway while earlier ones are still held for
    // their sockets (createWriteCoalescer.ts): several frames of one client go out in one write.
    const token = await bed.token(ALICE);
    const query = 'subscription { ticks(channel: "burst") { n } }';
    const subscribers = Array.from({ length: 50 }, () =>
      collect<{ ticks: { n: number } }>(bed.client(token), query),
    );
    await upstreamReady('burst');
    await new Promise((resolve) => setTimeout(resolve, 100)); // every client's subscribe message in
    const sent = Array.from({ length: 40 }, (_, i) => i + 1);
    for (const n of sent) bed.channel('burst').publish({ n, channel: 'burst', widgetId: 'w' });
    await eventually(
      async () => subscribers.filter((s) => s.events.length === sent.length).length,
      (count) => count === subscribers.length,
    );
    for (const subscriber of subscribers) {
      expect(subscriber.events.map((e) => e.data?.ticks.n)).toEqual(sent);
      expect(subscriber.errors).toEqual([]);
      subscriber.dispose();
    }
    // Each event's fan-out timed, from its arrival to the last client's bytes handed to the kernel.
    const metrics = await fetch(new URL('/metrics', bed.url)).then((r) => r.text());
    const fannedOut = /^gateway_subscription_fanout_seconds_count\{[^}]*subgraph="(\w+)"[^}]*\} (\d+)$/m.exec(
      metrics,
    );
    expect(fannedOut?.[1]).toBeTruthy();
    expect(Number(fannedOut?.[2])).toBeGreaterThanOrEqual(sent.length);
  });

  it('different viewers get separate upstream subscriptions, each in its own name', async () => {
    const before = bed.ticker.subscribeCount;
    const alice = collect<Tick>(bed.client(await bed.token(ALICE)), TICKS, { channel: 'split' });
    const bob = collect<Tick>(bed.client(await bed.token(BOB)), TICKS, { channel: 'split' });
    await upstreamReady('split', 2);
    bed.channel('split').publish({ n: 1, channel: 'split', widgetId: 'w1' });
    await eventually(
      async () => alice.events.length + bob.events.length,
      (n) => n === 2,
    );
    expect(bed.ticker.subscribeCount - before).toBe(2);
    expect(alice.events[0]?.data?.ticks.widget.viewedBy).toBe(ALICE.id);
    expect(bob.events[0]?.data?.ticks.widget.viewedBy).toBe(BOB.id);
    alice.dispose();
    bob.dispose();
  });

  it('refuses an anonymous subscriber (UNAUTHENTICATED) and a customer on an admin field (FORBIDDEN)', async () => {
    const anonymous = collect(bed.client(), TICKS, { channel: 'auth' });
    const customer = collect(
      bed.client(await bed.token(ALICE)),
      'subscription { adminTicks(channel: "auth") { n } }',
    );
    const admin = collect<{ adminTicks: { n: number } }>(
      bed.client(await bed.token(ADMIN)),
      'subscription { adminTicks(channel: "auth") { n } }',
    );
    await eventually(
      async () => [anonymous, customer].map((s) => s.events.length + s.errors.length),
      (counts) => counts.every((n) => n > 0),
    );
    const codes = (s: typeof anonymous) =>
      [
        ...s.events.flatMap((e) => e.errors ?? []),
        ...(s.errors.flat() as { extensions?: { code?: string } }[]),
      ].map((e) => e.extensions?.['code']);
    expect(codes(anonymous)).toContain('UNAUTHENTICATED');
    expect(codes(customer)).toContain('FORBIDDEN');

    await upstreamReady('auth', 1);
    bed.channel('auth').publish({ n: 7, channel: 'auth', widgetId: 'w' });
    await eventually(
      async () => admin.events.length,
      (n) => n === 1,
    );
    expect(admin.events[0]?.data?.adminTicks.n).toBe(7);
    admin.dispose();
  });

  it('closes a connection whose token is invalid (4403)', async () => {
    const closed = await rawSocket({ authorization: 'Bearer not-a-token' });
    expect(closed.code).toBe(4403);
  });

  it('closes a connection that never sends connection_init (4408)', async () => {
    const closed = await rawSocket(null);
    expect(closed.code).toBe(4408);
  });

  it('a connection serves its subscriptions until its token expires, then closes with 4403', async () => {
    const token = await bed.token(ALICE, 4);
    const expiresAt = expiryOf(token);
    const socket = new WebSocket(bed.wsUrl, 'graphql-transport-ws');
    const messages: { type: string; id?: string; payload?: { data?: Tick } }[] = [];
    socket.on('message', (data: Buffer) => messages.push(JSON.parse(String(data)) as (typeof messages)[0]));
    const closed = new Promise<{ code: number; reason: string; at: number }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: String(reason), at: Date.now() })),
    );
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await eventually(
      async () => messages.length,
      (n) => n > 0,
    );
    expect(messages[0]).toEqual({ type: 'connection_ack' });

    socket.send(
      JSON.stringify({
        id: 'live',
        type: 'subscribe',
        payload: { query: TICKS, variables: { channel: 'expiry' } },
      }),
    );
    await upstreamReady('expiry');
    bed.channel('expiry').publish({ n: 1, channel: 'expiry', widgetId: 'w1' });
    await eventually(
      async () => messages.filter((m) => m.type === 'next'),
      (next) => next.length === 1,
    );
    expect(messages.find((m) => m.type === 'next')).toMatchObject({
      id: 'live',
      payload: { data: { ticks: { n: 1, viewerId: ALICE.id } } },
    });

    const { code, reason, at } = await closed;
    expect(code).toBe(4403);
    expect(reason).toMatch(/expired/i);
    // Closed because the token ran out, not before (timers may fire a millisecond early).
    expect(at).toBeGreaterThanOrEqual(expiresAt - 20);
    await upstreamReady('expiry', 0);
  });

  it('refuses more subscriptions on one connection than allowed (RATE_LIMITED)', async () => {
    const alice = bed.client(await bed.token(ALICE));
    const subscriptions = [1, 2, 3, 4].map((i) => collect(alice, TICKS, { channel: `limit-${i}` }));
    await eventually(
      async () => subscriptions[3]!.errors.length,
      (n) => n === 1,
    );
    expect(JSON.stringify(subscriptions[3]!.errors)).toMatch(/RATE_LIMITED/);
    expect(subscriptions.slice(0, 3).every((s) => s.errors.length === 0)).toBe(true);
    for (const s of subscriptions) s.dispose();
  });

  it('disconnects a subscriber too slow to read, while others on the same stream carry on', async () => {
    const token = await bed.token(ALICE);
    const healthy = collect<Tick>(bed.client(token), 'subscription { ticks(channel: "slow") { n padding } }');
    const slow = new WebSocket(bed.wsUrl, 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => slow.once('close', (code) => resolve(code)));
    await new Promise((resolve) => slow.once('open', resolve));
    slow.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await new Promise((resolve) => slow.once('message', resolve));
    slow.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { ticks(channel: "slow") { n padding } }' },
      }),
    );
    await upstreamReady('slow');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Stop reading: the kernel buffers fill, then the gateway's send buffer.
    (slow as unknown as { _socket: { pause(): void } })._socket.pause();
    const padding = 'x'.repeat(64 * 1024);
    for (let n = 1; n <= 300; n += 1) {
      bed.channel('slow').publish({ n, channel: 'slow', widgetId: 'w', padding });
      if (n % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await eventually(
      async () => healthy.events.length,
      (n) => n === 300,
    );
    (slow as unknown as { _socket: { resume(): void } })._socket.resume();
    expect(await closed).toBe(1008);
    expect(healthy.errors).toEqual([]);
    healthy.dispose();
  });

  it('serves the same subscriptions over Server-Sent Events (Accept: text/event-stream)', async () => {
    const token = await bed.token(ALICE);
    const client = createSseClient({ url: bed.url, headers: { authorization: `Bearer ${token}` } });
    const events: unknown[] = [];
    const dispose = client.subscribe(
      { query: TICKS, variables: { channel: 'sse' } },
      { next: (e) => events.push(e), error: (e) => events.push({ error: e }), complete: () => {} },
    );
    await upstreamReady('sse');
    bed.channel('sse').publish({ n: 1, channel: 'sse', widgetId: 'w9' });
    await eventually(
      async () => events.length,
      (n) => n === 1,
    );
    expect(events[0]).toEqual({
      data: {
        ticks: { n: 1, viewerId: ALICE.id, widget: { id: 'w9', name: 'Widget w9', viewedBy: ALICE.id } },
      },
    });
    dispose();
    client.dispose();
    await upstreamReady('sse', 0);

    const refused = await fetch(bed.url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: 'Bearer nope',
      },
      body: JSON.stringify({ query: TICKS, variables: { channel: 'sse' } }),
    });
    expect(refused.status).toBe(401);
  });

  it('drops an event-stream subscriber too slow to read, while others on the same stream carry on', async () => {
    const token = await bed.token(ALICE);
    const query = 'subscription { ticks(channel: "slow-sse") { n padding } }';
    const healthy = collect<Tick>(bed.client(token), query);
    const body = JSON.stringify({ query });
    const slow = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(
        bed.url,
        {
          method: 'POST',
          headers: {
            accept: 'text/event-stream',
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(body),
            authorization: `Bearer ${token}`,
          },
        },
        resolve,
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(slow.statusCode).toBe(200);
    let received = '';
    slow.setEncoding('utf8');
    const ended = new Promise<void>((resolve) => {
      slow.on('data', (chunk: string) => (received += chunk));
      slow.on('error', () => {}); // "aborted": what a cut stream looks like to a client
      slow.on('close', resolve);
    });
    await upstreamReady('slow-sse');
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Stop reading: the kernel buffers fill, then the gateway's send buffer.
    slow.pause();
    const padding = 'x'.repeat(64 * 1024);
    for (let n = 1; n <= 300; n += 1) {
      bed.channel('slow-sse').publish({ n, channel: 'slow-sse', widgetId: 'w', padding });
      if (n % 20 === 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await eventually(
      async () => healthy.events.length,
      (n) => n === 300,
    );
    slow.resume();
    await ended;
    // Cut off mid-stream: not every event, and no `complete`.
    expect(received.match(/^event: next$/gm)?.length ?? 0).toBeLessThan(300);
    expect(received).not.toMatch(/^event: complete$/m);
    expect(healthy.errors).toEqual([]);
    healthy.dispose();
  });

  it('over SSE, a subscription ends UNAUTHENTICATED when its token expires', async () => {
    const token = await bed.token(ALICE, 4);
    const expiresAt = expiryOf(token);
    const client = createSseClient({ url: bed.url, headers: { authorization: `Bearer ${token}` } });
    const events: { data?: Tick | null; errors?: { message: string; extensions?: { code?: string } }[] }[] =
      [];
    let completedAt: number | undefined;
    const dispose = client.subscribe<Tick>(
      { query: TICKS, variables: { channel: 'sse-expiry' } },
      {
        next: (e) => events.push(e as (typeof events)[0]),
        error: (e) => events.push({ errors: [{ message: String(e) }] }),
        complete: () => (completedAt = Date.now()),
      },
    );
    await upstreamReady('sse-expiry');
    bed.channel('sse-expiry').publish({ n: 1, channel: 'sse-expiry', widgetId: 'w1' });
    await eventually(
      async () => events.length,
      (n) => n === 1,
    );
    expect(events[0]?.data?.ticks.n).toBe(1);

    await eventually(
      async () => completedAt,
      (at) => at !== undefined,
    );
    expect(events).toHaveLength(2);
    expect(events[1]?.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    expect(events[1]?.errors?.[0]?.message).toMatch(/expired/i);
    expect(completedAt).toBeGreaterThanOrEqual(expiresAt - 20);
    // The stream is over: the upstream subscription it held is released.
    await upstreamReady('sse-expiry', 0);
    dispose();
    client.dispose();
  });

  it('queries still go through Apollo Server over HTTP at the same URL', async () => {
    const response = await fetch(bed.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: '{ widget(id: "w1") { name } }' }),
    });
    expect(await response.json()).toEqual({ data: { widget: { name: 'Widget w1' } } });
  });

  /** When a token expires (ms since epoch), from its `exp` claim. */
  function expiryOf(token: string): number {
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number };
    return claims.exp * 1000;
  }

  async function rawSocket(init: Record<string, unknown> | null) {
    const socket = new WebSocket(bed.wsUrl, 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    await new Promise((resolve) => socket.once('open', resolve));
    if (init) socket.send(JSON.stringify({ type: 'connection_init', payload: init }));
    return closed;
  }
});

describe('when a subgraph socket drops', () => {
  let own: SubscriptionTestbed;
  beforeAll(async () => {
    own = await startSubscriptionTestbed();
  });
  afterAll(() => own?.stop());

  it('the gateway resubscribes and the subscriber never sees an error', async () => {
    const ticks = collect<Tick>(own.client(await own.token(ALICE)), TICKS, { channel: 'blip' });
    await upstreamReady('blip', 1, own);
    own.channel('blip').publish({ n: 1, channel: 'blip', widgetId: 'w' });
    await eventually(
      async () => ticks.events.length,
      (count) => count === 1,
    );
    const subscribedBefore = own.ticker.subscribeCount;
    own.ticker.dropConnections();
    await eventually(
      async () => own.ticker.subscribeCount,
      (n) => n > subscribedBefore,
    );
    await upstreamReady('blip', 1, own);
    own.channel('blip').publish({ n: 2, channel: 'blip', widgetId: 'w' });
    await eventually(
      async () => ticks.events.map((e) => e.data?.ticks.n),
      (ns) => ns.includes(2),
    );
    expect(ticks.events.map((e) => e.data?.ticks.n)).toEqual([1, 2]);
    expect(ticks.errors).toEqual([]);
    expect(ticks.completed).toBe(false);
    ticks.dispose();
  });

  it('subscriptions sharing the socket survive more outages than the retry limit, as long as each heals', async () => {
    // Two attempts per outage, and pauses long enough (100-200 ms, then 200-400 ms) that most
    // subscriptions resubscribe after another one has already reopened the socket. Ten quiet
    // subscriptions (no event between the outages) share the gateway's one socket to the
    // ticker: each outage is over for all of them once the socket is back.
    const slowRetries = await startSubscriptionTestbed({
      SUBSCRIPTION_UPSTREAM_RETRY_ATTEMPTS: '2',
      SUBSCRIPTION_UPSTREAM_RETRY_DELAY_MS: '200',
    });
    onTestFinished(() => slowRetries.stop());
    const token = await slowRetries.token(ALICE);
    const channels = Array.from({ length: 10 }, (_, i) => `outage-${i}`);
    const subscriptions = channels.map((channel) =>
      collect<Tick>(slowRetries.client(token), TICKS, { channel }),
    );
    const allListening = () =>
      eventually(
        async () => channels.map((channel) => slowRetries.channel(channel).listeners),
        (counts) => counts.every((n) => n === 1),
      );
    await allListening();
    for (let outage = 1; outage <= 6; outage += 1) {
      const subscribedBefore = slowRetries.ticker.subscribeCount;
      slowRetries.ticker.dropConnections();
      await eventually(
        async () => slowRetries.ticker.subscribeCount - subscribedBefore,
        (resubscribed) => resubscribed === channels.length,
      );
      await allListening();
    }
    for (const channel of channels) slowRetries.channel(channel).publish({ n: 1, channel, widgetId: 'w' });
    await eventually(
      async () => subscriptions.filter((s) => s.events.length === 1).length,
      (live) => live === channels.length,
    );
    for (const subscription of subscriptions) {
      expect(subscription.errors).toEqual([]);
      expect(subscription.completed).toBe(false);
      subscription.dispose();
    }
  });

  it('a subgraph that does not come back ends the subscription with SERVICE_UNAVAILABLE', async () => {
    const ticks = collect<Tick>(own.client(await own.token(ALICE)), TICKS, { channel: 'gone' });
    await upstreamReady('gone', 1, own);
    await own.ticker.stop();
    const failed = await eventually(
      async () => [...ticks.events.flatMap((e) => e.errors ?? []), ...(ticks.errors.flat() as object[])],
      (errors) => errors.length > 0,
    );
    expect(JSON.stringify(failed)).toMatch(/SERVICE_UNAVAILABLE/);
    expect(JSON.stringify(failed)).toMatch(/ticker/);
  });
});

describe('errors found before execution, over WebSocket and SSE', () => {
  const CASES = [
    {
      what: 'a misspelt field',
      query: 'subscription { ticks(channel: "e") { widgt { id } } }',
      variables: {},
      code: 'GRAPHQL_VALIDATION_FAILED',
    },
    { what: 'a variable of the wrong type', query: TICKS, variables: { channel: 5 }, code: 'BAD_USER_INPUT' },
    { what: 'a syntax error', query: 'subscription { ticks(', variables: {}, code: 'GRAPHQL_PARSE_FAILED' },
  ];
  type Errors = { message: string; extensions?: Record<string, unknown> }[];

  async function overWebSocket(testbed: SubscriptionTestbed, query: string, variables: object) {
    const refused = collect(testbed.client(await testbed.token(ALICE)), query, variables as never);
    await eventually(
      async () => refused.errors.length,
      (n) => n > 0,
    );
    return refused.errors.flat() as Errors;
  }

  async function overSse(testbed: SubscriptionTestbed, query: string, variables: object) {
    const client = createSseClient({
      url: testbed.url,
      headers: { authorization: `Bearer ${await testbed.token(ALICE)}` },
    });
    try {
      return await new Promise<Errors>((resolve, reject) => {
        client.subscribe(
          { query, variables: variables as Record<string, unknown> },
          {
            next: (result) => resolve((result.errors ?? []) as unknown as Errors),
            error: reject,
            complete: () => resolve([]),
          },
        );
      });
    } finally {
      client.dispose();
    }
  }

  it('in development, each carries its code, as over HTTP', async () => {
    for (const { what, query, variables, code } of CASES) {
      for (const [transport, send] of [
        ['WebSocket', overWebSocket],
        ['SSE', overSse],
      ] as const) {
        const errors = await send(bed, query, variables);
        expect(
          errors.map((e) => e.extensions?.['code']),
          `${what} over ${transport}`,
        ).toEqual([code]);
      }
    }
    const [misspelt] = await overWebSocket(bed, CASES[0]!.query, {});
    expect(misspelt?.message).toMatch(/Did you mean "widget"/);
  });

  it('in production, each carries its code and suggests no field names', async () => {
    const production = await startSubscriptionTestbed({
      NODE_ENV: 'production',
      ADMIN_PASSWORD: 'a strong production password',
    });
    onTestFinished(() => production.stop());
    for (const { what, query, variables, code } of CASES) {
      for (const [transport, send] of [
        ['WebSocket', overWebSocket],
        ['SSE', overSse],
      ] as const) {
        const errors = await send(production, query, variables);
        expect(
          errors.map((e) => e.extensions?.['code']),
          `${what} over ${transport}`,
        ).toEqual([code]);
        expect(JSON.stringify(errors), `${what} over ${transport}`).not.toMatch(
          /Did you mean|"widget"|stacktrace/,
        );
      }
    }
  });
});

describe('live values (each event the whole current value, the first at once)', () => {
  let own: SubscriptionTestbed;
  beforeAll(async () => {
    own = await startSubscriptionTestbed();
  });
  afterAll(() => own?.stop());

  interface Latest {
    latestTick: { n: number; widget: { name: string } };
  }
  const LATEST = `subscription Latest($channel: String!) {
    latestTick(channel: $channel) { n widget { name } }
  }`;
  const ns = (s: { events: { data?: Latest | null }[] }) => s.events.map((e) => e.data?.latestTick.n);

  it('a subscriber joining a shared upstream gets the latest value at once, then each new one', async () => {
    const token = await own.token(ALICE);
    own.channel('live').publish({ n: 1, channel: 'live', widgetId: 'w1' });
    const first = collect<Latest>(own.client(token), LATEST, { channel: 'live' });
    await eventually(
      async () => ns(first),
      (values) => values.length === 1,
    );
    const subscribedBefore = own.ticker.subscribeCount;

    const late = collect<Latest>(own.client(token), LATEST, { channel: 'live' });
    await eventually(
      async () => ns(late),
      (values) => values.length === 1,
    );
    expect(late.events[0]).toEqual({ data: { latestTick: { n: 1, widget: { name: 'Widget w1' } } } });
    expect(own.ticker.subscribeCount).toBe(subscribedBefore); // the same upstream

    own.channel('live').publish({ n: 2, channel: 'live', widgetId: 'w1' });
    await eventually(
      async () => [ns(first), ns(late)],
      (values) => values.every((v) => v.length === 2),
    );
    expect(ns(first)).toEqual([1, 2]);
    expect(ns(late)).toEqual([1, 2]);
    // The mark between subgraph and gateway stays between them.
    expect(JSON.stringify([first.events, late.events])).not.toMatch(/x-live-value|extensions/);
    first.dispose();
    late.dispose();
  });

  it('after the subgraph socket drops, subscribers get what changed meanwhile, and nothing twice', async () => {
    const live = collect<Latest>(own.client(await own.token(ALICE)), LATEST, { channel: 'drop' });
    await upstreamReady('drop', 1, own);
    own.channel('drop').publish({ n: 1, channel: 'drop', widgetId: 'w' });
    await eventually(
      async () => ns(live),
      (values) => values.length === 1,
    );

    // Published as the socket goes down: sent on the dying socket, or to no one. Lost either way,
    // until the resubscription's value at once.
    own.ticker.dropConnections();
    own.channel('drop').publish({ n: 2, channel: 'drop', widgetId: 'w' });
    await eventually(
      async () => ns(live),
      (values) => values.includes(2),
    );

    // Nothing changes during this outage: the resubscription's value at once is the same, and
    // is not sent again.
    const subscribedBefore = own.ticker.subscribeCount;
    own.ticker.dropConnections();
    await eventually(
      async () => [own.ticker.subscribeCount > subscribedBefore, own.channel('drop').listeners === 1],
      (ready) => ready.every(Boolean),
    );
    own.channel('drop').publish({ n: 3, channel: 'drop', widgetId: 'w' });
    await eventually(
      async () => ns(live),
      (values) => values.includes(3),
    );
    expect(ns(live)).toEqual([1, 2, 3]);
    expect(live.errors).toEqual([]);
    live.dispose();
  });
});

describe('supergraph hot reload', () => {
  let own: SubscriptionTestbed;
  beforeAll(async () => {
    own = await startSubscriptionTestbed();
  });
  afterAll(() => own?.stop());

  it('new subscriptions are planned against the reloaded supergraph', async () => {
    const token = await own.token(ALICE);
    const query = 'subscription { ticks(channel: "reload") { n widget { color } } }';
    const before = collect(own.client(token), query);
    await eventually(
      async () => before.errors.length,
      (n) => n === 1,
    );
    expect(JSON.stringify(before.errors)).toMatch(/color/);

    await own.compose({ withColor: true });
    const after = await eventually(
      async () => {
        const attempt = collect<{ ticks: { n: number; widget: { color: string } } }>(
          own.client(token),
          query,
        );
        await new Promise((resolve) => setTimeout(resolve, 100));
        if (attempt.errors.length > 0) return null;
        return attempt;
      },
      (attempt) => attempt !== null,
    );
    await upstreamReady('reload', 1, own);
    own.channel('reload').publish({ n: 1, channel: 'reload', widgetId: 'w' });
    await eventually(
      async () => after!.events.length,
      (n) => n === 1,
    );
    expect(after!.events[0]).toEqual({ data: { ticks: { n: 1, widget: { color: 'teal' } } } });
  });

  it('stopping the gateway closes its WebSockets with 1001 (going away), after the events already sent', async () => {
    const token = await own.token(ALICE);
    const socket = new WebSocket(own.wsUrl, 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => socket.once('close', (code) => resolve(code)));
    const received: number[] = [];
    let afterClose = 0;
    socket.on('message', (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { type: string; payload?: { data?: Tick } };
      if (message.type === 'next') received.push(message.payload!.data!.ticks.n);
    });
    socket.once('close', () => socket.on('message', () => (afterClose += 1)));
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${token}` } }));
    await new Promise((resolve) => socket.once('message', resolve));
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: TICKS, variables: { channel: 'stop' } },
      }),
    );
    await upstreamReady('stop', 1, own);
    own.channel('stop').publish({ n: 1, channel: 'stop', widgetId: 'w' });
    await eventually(
      async () => received.length,
      (n) => n === 1,
    );
    // A burst still on its way when the gateway stops: what went out is whole and in order, and
    // the close frame comes after it.
    for (let n = 2; n <= 20; n++) own.channel('stop').publish({ n, channel: 'stop', widgetId: 'w' });
    await own.gateway.stop();
    expect(await closed).toBe(1001);
    expect(received).toEqual(Array.from({ length: received.length }, (_, i) => i + 1));
    expect(afterClose).toBe(0);
  });
});

describe('request ids, spans and log lines of subscriptions', () => {
  type LogLine = Record<string, unknown> & { msg?: string; request_id?: string; trace_id?: string };
  const logs: LogLine[] = [];
  let own: SubscriptionTestbed;
  beforeAll(async () => {
    own = await startSubscriptionTestbed(
      { LOG_LEVEL: 'info' },
      {
        logDestination: collectLogLines(logs),
      },
    );
  });
  afterAll(() => own?.stop());

  const linesOf = (requestId: string) => logs.filter((l) => l.request_id === requestId);
  const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';

  it('over WebSocket, each subscription logs its start and end under its own request id and trace', async () => {
    const client = own.client(await own.token(ALICE));
    const events: unknown[] = [];
    const dispose = client.subscribe(
      {
        query: TICKS, // named in the document only
        variables: { channel: 'observed' },
        extensions: { 'x-request-id': 'ws-subscription-1' },
      },
      { next: (e) => events.push(e), error: () => {}, complete: () => {} },
    );
    await upstreamReady('observed', 1, own);
    own.channel('observed').publish({ n: 1, channel: 'observed', widgetId: 'w' });
    await eventually(
      async () => events.length,
      (n) => n === 1,
    );
    dispose();
    const [started, ended] = await eventually(
      async () => linesOf('ws-subscription-1'),
      (lines) => lines.some((l) => l.msg === 'subscription ended'),
    );
    expect(started).toMatchObject({
      msg: 'subscription started',
      operation: 'Ticks',
      transport: 'websocket',
    });
    expect(ended).toMatchObject({ msg: 'subscription ended', operation: 'Ticks', transport: 'websocket' });
    expect(ended?.['durationMs']).toEqual(expect.any(Number));
    // One span for the subscription's life: both lines carry its trace.
    expect(started?.trace_id).toMatch(/^[0-9a-f]{32}$/);
    expect(ended?.trace_id).toBe(started?.trace_id);
  });

  it('over SSE, the request id is echoed and the trace continues the client’s; a refusal is logged with its code', async () => {
    const token = await own.token(ALICE);
    const response = await fetch(own.url, {
      method: 'POST',
      headers: {
        accept: 'text/event-stream',
        'content-type': 'application/json',
        authorization: `Bearer ${token}`,
        'x-request-id': 'sse-subscription-1',
        traceparent: `00-${TRACE_ID}-00f067aa0ba902b7-01`,
      },
      body: JSON.stringify({
        query: 'subscription Misspelt { ticks(channel: "x") { nn } }',
        operationName: 'Misspelt',
      }),
    });
    expect(response.headers.get('x-request-id')).toBe('sse-subscription-1');
    expect(await response.text()).toMatch(/GRAPHQL_VALIDATION_FAILED/);
    const [refused] = await eventually(
      async () => linesOf('sse-subscription-1'),
      (lines) => lines.length > 0,
    );
    expect(refused).toMatchObject({
      msg: 'subscription refused',
      operation: 'Misspelt',
      transport: 'sse',
      errorCodes: ['GRAPHQL_VALIDATION_FAILED'],
      trace_id: TRACE_ID,
    });

    const anonymous = await fetch(own.url, {
      method: 'POST',
      headers: { accept: 'text/event-stream', 'content-type': 'application/json' },
      body: JSON.stringify({ query: TICKS, variables: { channel: 'x' } }),
    });
    // No id sent: one is made up, and said.
    expect(anonymous.headers.get('x-request-id')).toMatch(/^[\w.:-]{8,}$/);
    await anonymous.body?.cancel();
  });
});

describe('rate limits on subscriptions', () => {
  it('each new subscription takes a token from its caller’s bucket; an empty bucket is RATE_LIMITED', async () => {
    const limited = await startSubscriptionTestbed({
      RATE_LIMIT_CAPACITY: '2',
      RATE_LIMIT_REFILL_PER_SECOND: '0.001',
    });
    try {
      const token = await limited.token(ALICE);
      // One connection each: the per-connection cap is not what is tested here.
      const subscriptions = ['rl-a', 'rl-b', 'rl-c'].map((channel) =>
        collect<Tick>(limited.client(token), TICKS, { channel }),
      );
      await eventually(
        async () => subscriptions.filter((s) => s.errors.length > 0).length,
        (n) => n === 1,
      );
      const refused = subscriptions.filter((s) => s.errors.length > 0);
      expect(JSON.stringify(refused[0]!.errors)).toMatch(/RATE_LIMITED/);
      expect(JSON.stringify(refused[0]!.errors)).toMatch(/retryAfterSeconds/);
    } finally {
      await limited.stop();
    }
  });
});
