import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { createLatencyHistogram, type HistogramEntries } from './latencyHistogram.ts';
import type { SubscriptionSpec } from './operations.ts';

/**
 * The subscribers, in their own process (the harness pins it away from the gateway): `clients`
 * logical clients, each with one WebSocket per entry of `sockets` (one to the gateway; or, for
 * the baseline, one to each subgraph), speaking graphql-transport-ws over plain `ws` (no
 * graphql-ws client: less client-side work per event, so the figures are the server's).
 *
 * Every event is stamped with the wall clock (performance.timeOrigin + now, shared with the
 * driver's process) when its message is handled. The harness drives this process with one JSON
 * command per line on stdin and reads one JSON message per line on stdout.
 */
export interface SocketSpec {
  url: string;
  connectionParams: Record<string, unknown>;
  subscriptions: SubscriptionSpec[];
}

export interface ClientsOptions {
  clients: number;
  /** The sockets of one client. */
  sockets: SocketSpec[];
  /** Sockets being opened at once. */
  connectConcurrency: number;
}

export interface ReportCommand {
  cmd: 'report';
  /** The orders placed since the last reset: each client must see each one CONFIRMED. */
  orders: { id: string; returnedAt: number }[];
  /**
   * The k-th placeOrder to return, as "the first push showing at least `confirmedOrders`
   * confirmed orders reflects it" (pushes are coalesced, so a push reflects a count, not an order).
   */
  metricsTargets: { confirmedOrders: number; returnedAt: number }[];
  /** `salesMetrics` once orders stopped, as JSON: every client's last push must equal it. */
  finalMetrics: string;
  /** What a probe client subscribed straight to the subgraphs received, and when (its TimesMessage). */
  probe?: { status: Record<string, number>; pushes: number[] };
}

export type ClientsCommand =
  { cmd: 'reset' } | { cmd: 'progress' } | ReportCommand | { cmd: 'times' } | { cmd: 'close' };

/** The first client's receipts since the last reset: a probe's (one client) reference times. */
export interface TimesMessage {
  type: 'times';
  /** Order id → when its CONFIRMED arrived. */
  status: Record<string, number>;
  /** [receivedAt, confirmedOrders] of every push. */
  pushes: number[];
}

export interface ReadyMessage {
  type: 'ready';
  clients: number;
  sockets: number;
  failedSockets: number;
  connectMs: number;
  failures: string[];
}

export interface ProgressMessage {
  type: 'progress';
  /** `next` messages since the last reset. */
  events: number;
  /** CONFIRMED status events received (client × order) since the last reset. */
  statusConfirmed: number;
  clientsWithStatus: number;
  clientsWithMetrics: number;
  /** The lowest confirmedOrders of any client's last push (-1 if some client has none). */
  minConfirmedOrders: number;
  /** Sockets closed after they were ready. */
  closed: number;
}

export interface ReportMessage {
  type: 'report';
  events: number;
  statusEvents: number;
  metricsEvents: number;
  statusLatency: HistogramEntries;
  statusFromEvent: HistogramEntries;
  /** Receipt − the probe's receipt of the same CONFIRMED (when the report had a probe). */
  statusAfterProbe: HistogramEntries;
  /** Receipt of a push − the probe's first push with at least as many confirmed orders. */
  metricsAfterProbe: HistogramEntries;
  /** (client, order) pairs with no CONFIRMED event. */
  statusMissing: number;
  statusDuplicates: number;
  metricsLatency: HistogramEntries;
  /** (client, target) pairs no push ever reflected. */
  metricsMissing: number;
  /** Clients whose last push is not the final figures, and one such push. */
  metricsNotFinal: number;
  notFinalSample: string | undefined;
  /** Pushes that showed fewer confirmed orders than the client's previous push. */
  metricsBackwards: number;
  errors: number;
  errorSamples: string[];
  /** Close codes of sockets that closed after they were ready. */
  closes: Record<string, number>;
}

export type ClientsMessage =
  ReadyMessage | { type: 'reset' } | ProgressMessage | ReportMessage | TimesMessage | { type: 'closed' };

interface ClientState {
  sockets: WebSocket[];
  /** [receivedAt, confirmedOrders] pairs of every push since the last reset, in arrival order. */
  pushes: number[];
  lastMetrics: string | undefined;
  gotStatus: boolean;
}

interface Payload {
  data?: Record<string, unknown> | null;
  errors?: unknown[];
}

const now = () => performance.timeOrigin + performance.now();
const CONNECT_ATTEMPTS = 3;
const CONNECT_TIMEOUT_MS = 60_000;

export async function runClients(options: ClientsOptions, send: (message: ClientsMessage) => void) {
  const states: ClientState[] = Array.from({ length: options.clients }, () => ({
    sockets: [],
    pushes: [],
    lastMetrics: undefined,
    gotStatus: false,
  }));
  /** Per order: which clients saw it CONFIRMED, and when. */
  let confirmed = new Map<string, { seen: Uint8Array; at: Float64Array }>();
  let events = 0;
  let statusEvents = 0;
  let metricsEvents = 0;
  let statusConfirmed = 0;
  let statusDuplicates = 0;
  let metricsBackwards = 0;
  let errors = 0;
  /** From the CONFIRMED event's occurredAt (the order's updatedAt in the event) to receipt. */
  let statusFromEvent = createLatencyHistogram();
  const errorSamples: string[] = [];
  const closes: Record<string, number> = {};
  let closed = 0;
  let ready = false;

  const noteError = (what: unknown) => {
    errors += 1;
    if (errorSamples.length < 5) errorSamples.push(JSON.stringify(what).slice(0, 500));
  };

  function onEvent(client: number, id: string, payload: Payload, at: number) {
    events += 1;
    if (payload.errors) noteError(payload.errors);
    const state = states[client]!;
    if (id === 'status') {
      statusEvents += 1;
      const order = payload.data?.['orderStatusChanged'] as
        { id: string; status: string; updatedAt: string } | undefined;
      if (order?.status !== 'CONFIRMED') return;
      statusFromEvent.record(at - Date.parse(order.updatedAt));
      let entry = confirmed.get(order.id);
      if (!entry) {
        entry = { seen: new Uint8Array(states.length), at: new Float64Array(states.length) };
        confirmed.set(order.id, entry);
      }
      if (entry.seen[client]) {
        statusDuplicates += 1;
        return;
      }
      entry.seen[client] = 1;
      entry.at[client] = at;
      statusConfirmed += 1;
      state.gotStatus = true;
    } else if (id === 'metrics') {
      metricsEvents += 1;
      const metrics = payload.data?.['salesMetricsUpdated'] as { confirmedOrders: number } | undefined;
      if (!metrics) return;
      const previous = state.pushes[state.pushes.length - 1];
      if (previous !== undefined && metrics.confirmedOrders < previous) metricsBackwards += 1;
      state.pushes.push(at, metrics.confirmedOrders);
      state.lastMetrics = JSON.stringify(metrics);
    }
  }

  /** Opens one socket, completes the handshake and subscribes; resolves once subscribed. */
  function connect(client: number, spec: SocketSpec): Promise<WebSocket> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(spec.url, 'graphql-transport-ws', { perMessageDeflate: false });
      let acknowledged = false;
      const timer = setTimeout(() => {
        socket.terminate();
        reject(new Error(`no connection_ack within ${CONNECT_TIMEOUT_MS} ms`));
      }, CONNECT_TIMEOUT_MS);
      socket.on('open', () =>
        socket.send(JSON.stringify({ type: 'connection_init', payload: spec.connectionParams })),
      );
      socket.on('message', (data: Buffer) => {
        const at = now();
        const message = JSON.parse(data.toString()) as { type: string; id?: string; payload?: unknown };
        switch (message.type) {
          case 'next':
            onEvent(client, message.id!, message.payload as Payload, at);
            break;
          case 'connection_ack':
            acknowledged = true;
            clearTimeout(timer);
            for (const subscription of spec.subscriptions) {
              socket.send(
                JSON.stringify({
                  id: subscription.id,
                  type: 'subscribe',
                  payload: { query: subscription.query, operationName: subscription.operationName },
                }),
              );
            }
            resolve(socket);
            break;
          case 'error':
            noteError(message.payload);
            break;
          case 'complete':
            noteError({ completed: message.id });
            break;
          case 'ping':
            socket.send('{"type":"pong"}');
            break;
        }
      });
      socket.on('error', (error) => {
        if (!acknowledged) {
          clearTimeout(timer);
          reject(error);
        }
      });
      socket.on('close', (code, reason) => {
        if (!acknowledged) {
          clearTimeout(timer);
          reject(new Error(`closed ${code} ${reason.toString()} before connection_ack`));
        } else if (ready) {
          closed += 1;
          closes[code] = (closes[code] ?? 0) + 1;
        }
      });
    });
  }

  const started = performance.now();
  const failures: string[] = [];
  let failedSockets = 0;
  let next = 0;
  const work = [...states.keys()].flatMap((client) => options.sockets.map((spec) => ({ client, spec })));
  await Promise.all(
    Array.from({ length: Math.min(options.connectConcurrency, work.length) }, async () => {
      while (next < work.length) {
        const { client, spec } = work[next++]!;
        for (let attempt = 1; ; attempt++) {
          try {
            states[client]!.sockets.push(await connect(client, spec));
            break;
          } catch (error) {
            if (attempt < CONNECT_ATTEMPTS) {
              await sleep(500 * attempt);
              continue;
            }
            failedSockets += 1;
            if (failures.length < 5) failures.push(String(error));
            break;
          }
        }
      }
    }),
  );
  ready = true;
  send({
    type: 'ready',
    clients: states.length,
    sockets: work.length - failedSockets,
    failedSockets,
    connectMs: performance.now() - started,
    failures,
  });

  function reset() {
    confirmed = new Map();
    statusFromEvent = createLatencyHistogram();
    events = statusEvents = metricsEvents = statusConfirmed = statusDuplicates = metricsBackwards = 0;
    errors = closed = 0;
    errorSamples.length = 0;
    for (const key of Object.keys(closes)) delete closes[key];
    for (const state of states) {
      state.pushes = [];
      state.lastMetrics = undefined;
      state.gotStatus = false;
    }
  }

  function progress(): ProgressMessage {
    let minConfirmedOrders = Number.POSITIVE_INFINITY;
    let clientsWithStatus = 0;
    let clientsWithMetrics = 0;
    for (const state of states) {
      if (state.gotStatus) clientsWithStatus += 1;
      const last = state.pushes[state.pushes.length - 1];
      if (last === undefined) minConfirmedOrders = -1;
      else {
        clientsWithMetrics += 1;
        minConfirmedOrders = Math.min(minConfirmedOrders, last);
      }
    }
    return {
      type: 'progress',
      events,
      statusConfirmed,
      clientsWithStatus,
      clientsWithMetrics,
      minConfirmedOrders: states.length === 0 ? -1 : minConfirmedOrders,
      closed,
    };
  }

  function times(): TimesMessage {
    const status: Record<string, number> = {};
    for (const [orderId, entry] of confirmed) if (entry.seen[0]) status[orderId] = entry.at[0]!;
    return { type: 'times', status, pushes: states[0]?.pushes ?? [] };
  }

  function report(command: ReportCommand): ReportMessage {
    const statusLatency = createLatencyHistogram();
    let statusMissing = 0;
    for (const order of command.orders) {
      const entry = confirmed.get(order.id);
      for (let client = 0; client < states.length; client++) {
        if (entry?.seen[client]) statusLatency.record(entry.at[client]! - order.returnedAt);
        else statusMissing += 1;
      }
    }
    const metricsLatency = createLatencyHistogram();
    let metricsMissing = 0;
    let metricsNotFinal = 0;
    let notFinalSample: string | undefined;
    const targets = [...command.metricsTargets].sort((a, b) => a.confirmedOrders - b.confirmedOrders);
    for (const state of states) {
      // Pushes only grow (metricsBackwards counts any that did not), so one pass serves every target.
      let push = 0;
      for (const target of targets) {
        while (push < state.pushes.length && state.pushes[push + 1]! < target.confirmedOrders) push += 2;
        if (push < state.pushes.length) metricsLatency.record(state.pushes[push]! - target.returnedAt);
        else metricsMissing += 1;
      }
      if (state.lastMetrics !== command.finalMetrics) {
        metricsNotFinal += 1;
        notFinalSample ??= state.lastMetrics ?? '(no push)';
      }
    }
    const statusAfterProbe = createLatencyHistogram();
    const metricsAfterProbe = createLatencyHistogram();
    if (command.probe) {
      for (const [orderId, probeAt] of Object.entries(command.probe.status)) {
        const entry = confirmed.get(orderId);
        if (!entry) continue;
        for (let client = 0; client < states.length; client++) {
          if (entry.seen[client]) statusAfterProbe.record(entry.at[client]! - probeAt);
        }
      }
      const probePushes = command.probe.pushes;
      for (const state of states) {
        let probe = 0;
        for (let push = 0; push < state.pushes.length; push += 2) {
          while (probe < probePushes.length && probePushes[probe + 1]! < state.pushes[push + 1]!) probe += 2;
          if (probe < probePushes.length) metricsAfterProbe.record(state.pushes[push]! - probePushes[probe]!);
        }
      }
    }
    return {
      type: 'report',
      events,
      statusEvents,
      metricsEvents,
      statusLatency: statusLatency.entries(),
      statusFromEvent: statusFromEvent.entries(),
      statusAfterProbe: statusAfterProbe.entries(),
      metricsAfterProbe: metricsAfterProbe.entries(),
      statusMissing,
      statusDuplicates,
      metricsLatency: metricsLatency.entries(),
      metricsMissing,
      metricsNotFinal,
      notFinalSample,
      metricsBackwards,
      errors,
      errorSamples,
      closes: { ...closes },
    };
  }

  for await (const line of createInterface({ input: process.stdin })) {
    if (!line.trim()) continue;
    const command = JSON.parse(line) as ClientsCommand;
    if (command.cmd === 'reset') {
      reset();
      send({ type: 'reset' });
    } else if (command.cmd === 'progress') send(progress());
    else if (command.cmd === 'report') send(report(command));
    else if (command.cmd === 'times') send(times());
    else if (command.cmd === 'close') break;
  }
  ready = false;
  for (const state of states) for (const socket of state.sockets) socket.close(1000);
  await sleep(500);
  send({ type: 'closed' });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const options = JSON.parse(process.argv[2] ?? '{}') as ClientsOptions;
  await runClients(options, (message) => process.stdout.write(`${JSON.stringify(message)}\n`));
  process.exit(0);
}
