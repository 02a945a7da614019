import { RemoteGraphQLDataSource, type GraphQLDataSourceProcessOptions } from '@apollo/gateway';
import { BrokenCircuitError } from 'cockatiel';
import type { IncomingHttpHeaders } from 'node:http';
import { STATUS_CODES } from 'node:http';
import { Agent, request } from 'undici';
import { SERVICE_CREDENTIAL_HEADER } from '../../../lib/auth/tokens.ts';
import { appError, ErrorCode } from '../../../lib/errors.ts';
import type { Metrics } from '../../../lib/observability/createMetrics.ts';
import { injectTraceHeaders, SpanKind, withSpan } from '../../../lib/observability/createTracing.ts';
import { activeRequestId, REQUEST_ID_HEADER } from '../../../lib/observability/requestId.ts';
import type { Tracer } from '@opentelemetry/api';
import type { CircuitBreaker } from '../../../lib/resilience/createCircuitBreaker.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import { dedupeEntityRepresentations } from './dedupeEntityRepresentations.ts';

/** The fetch function type @apollo/gateway's data sources take. */
export type Fetcher = NonNullable<
  NonNullable<ConstructorParameters<typeof RemoteGraphQLDataSource>[0]>['fetcher']
>;
type FetcherResponse = Awaited<ReturnType<Fetcher>>;
type FetcherHeaders = FetcherResponse['headers'];

/**
 * One undici Agent for all subgraph traffic: keep-alive connections pooled per origin, so a
 * query fanning out to four subgraphs reuses warm sockets instead of paying a TCP handshake
 * per fetch.
 *
 * The fetcher speaks undici's `request` (its native client), not `fetch`: the profile of the
 * federation benchmark put ~10 % of the gateway's CPU in WHATWG fetch's machinery (Web streams,
 * Headers, transferable bodies) for replies the gateway reads whole anyway. The reply is read
 * completely before the promise resolves, so a deadline on the call covers the body too.
 */
export function createSubgraphHttpClient({ maxConnectionsPerOrigin }: { maxConnectionsPerOrigin: number }) {
  const agent = new Agent({
    connections: maxConnectionsPerOrigin,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 120_000,
    pipelining: 1,
  });
  const fetcher: Fetcher = async (url, init) => {
    const reply = await request(url, {
      dispatcher: agent,
      method: init?.method ?? 'GET',
      headers: init?.headers,
      body: init?.body,
      signal: init?.signal as AbortSignal | undefined,
    });
    return new BufferedResponse(url, reply.statusCode, replyHeaders(reply.headers), await reply.body.text());
  };
  return { fetcher, close: () => agent.close() };
}

function replyHeaders(raw: IncomingHttpHeaders): Map<string, string> {
  const headers = new Map<string, string>();
  for (const [name, value] of Object.entries(raw)) {
    if (value !== undefined) headers.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return headers;
}

/** A subgraph's whole reply, shaped as the fetch Response that @apollo/gateway reads. */
class BufferedResponse implements FetcherResponse {
  readonly bodyUsed = false;
  readonly redirected = false;
  readonly headers: FetcherHeaders;

  constructor(
    readonly url: string,
    readonly status: number,
    headers: Map<string, string>,
    private readonly body: string,
  ) {
    this.headers = new ReplyHeaders(headers);
  }

  get ok() {
    return this.status >= 200 && this.status < 300;
  }

  get statusText() {
    return STATUS_CODES[this.status] ?? '';
  }

  text() {
    return Promise.resolve(this.body);
  }

  /** Async, so that malformed JSON is a rejected promise, as with fetch. */
  async json(): Promise<unknown> {
    return JSON.parse(this.body) as unknown;
  }

  arrayBuffer() {
    const bytes = Buffer.from(this.body);
    return Promise.resolve(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  }

  clone() {
    return this;
  }
}

/** Reply headers, by lower-case name (what HTTP/1.1 parsing gives). */
class ReplyHeaders implements FetcherHeaders {
  constructor(private readonly map: Map<string, string>) {}
  get(name: string) {
    return this.map.get(name.toLowerCase()) ?? null;
  }
  has(name: string) {
    return this.map.has(name.toLowerCase());
  }
  set(name: string, value: string) {
    this.map.set(name.toLowerCase(), value);
  }
  append(name: string, value: string) {
    const current = this.get(name);
    this.set(name, current === null ? value : `${current}, ${value}`);
  }
  delete(name: string) {
    this.map.delete(name.toLowerCase());
  }
  entries() {
    return this.map.entries();
  }
  keys() {
    return this.map.keys();
  }
  values() {
    return this.map.values();
  }
  [Symbol.iterator]() {
    return this.map.entries();
  }
}

/** A subgraph that did not answer in time, or whose proxy says it is down (502-504). */
class SubgraphDownError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SubgraphDownError';
  }
}

/**
 * Every call to one subgraph through its circuit breaker, with a deadline on the whole reply
 * (headers and body): unreachable, timed out and 502-504 count as failures and open the
 * circuit after enough of them in a row; an open circuit fails at once instead of waiting.
 * GraphQL errors in a 200 reply are answers, not failures.
 */
export function resilientFetcher({
  fetcher,
  breaker,
  timeoutMs,
}: {
  fetcher: Fetcher;
  breaker: CircuitBreaker;
  timeoutMs: number;
}): Fetcher {
  return (url, init) =>
    breaker.execute(async () => {
      const deadline = AbortSignal.timeout(timeoutMs);
      const signal = init?.signal ? AbortSignal.any([init.signal as AbortSignal, deadline]) : deadline;
      try {
        // The fetcher resolves with the whole body read, so the deadline covers it.
        const response = await fetcher(url, { ...init, signal });
        if (response.status >= 502 && response.status <= 504) {
          throw new SubgraphDownError(`HTTP ${response.status}`);
        }
        return response;
      } catch (error) {
        if (deadline.aborted) throw new SubgraphDownError(`no reply within ${timeoutMs} ms`);
        throw error;
      }
    });
}

/**
 * A subgraph as the gateway calls it: every request carries the gateway's short-lived signed
 * credential with the viewer's identity (subgraphs trust nothing else), never the client's
 * own headers.
 */
export class SubgraphDataSource extends RemoteGraphQLDataSource<GatewayContext> {
  readonly #name: string;
  readonly #tracer: Tracer | undefined;
  readonly #calls: ReturnType<typeof subgraphCallMetrics> | undefined;

  constructor(
    options: ConstructorParameters<typeof RemoteGraphQLDataSource<GatewayContext>>[0] & {
      name: string;
      /** A client span per fetch, so a trace shows which subgraphs a query touched and how long each took. */
      tracer?: Tracer;
      metrics?: Metrics;
    },
  ) {
    super(options);
    this.#name = options.name;
    this.#tracer = options.tracer;
    this.#calls = options.metrics && subgraphCallMetrics(options.metrics);
  }

  override async process(options: GraphQLDataSourceProcessOptions<GatewayContext>) {
    const started = process.hrtime.bigint();
    let outcome = 'error';
    try {
      const deduped = dedupeEntityRepresentations(options.request.variables?.['representations']);
      const sent = deduped
        ? {
            ...options,
            request: {
              ...options.request,
              variables: { ...options.request.variables, representations: deduped.representations },
            },
          }
        : options;
      const reply = this.#tracer
        ? await withSpan(
            this.#tracer,
            `subgraph ${this.#name}`,
            { kind: SpanKind.CLIENT, attributes: { 'graphql.subgraph.name': this.#name } },
            () => super.process(sent),
          )
        : await super.process(sent);
      const response = deduped ? deduped.expand(reply) : reply;
      outcome = response.errors?.length ? 'graphql_error' : 'ok';
      return response;
    } finally {
      this.#calls?.requests.inc({ subgraph: this.#name, outcome });
      this.#calls?.duration.observe(
        { subgraph: this.#name },
        Number(process.hrtime.bigint() - started) / 1e9,
      );
    }
  }

  override async willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<GatewayContext>) {
    // The gateway's option types reach us through a nested copy of its interface package and
    // type-check as `any`: name what they are. Health checks and schema loads carry no context.
    const ctx = context as Partial<GatewayContext> | undefined;
    const headers = request.http?.headers as { set(name: string, value: string): void } | undefined;
    if (!headers) return;
    for (const [name, value] of Object.entries(injectTraceHeaders())) headers.set(name, value);
    const requestId = activeRequestId();
    if (requestId) headers.set(REQUEST_ID_HEADER, requestId);
    if (!ctx?.serviceCredential) return;
    headers.set(SERVICE_CREDENTIAL_HEADER, await ctx.serviceCredential());
  }

  /**
   * A subgraph that cannot be reached (refused, reset, no answer) or whose proxy says so
   * (502-504) is SERVICE_UNAVAILABLE naming it, as API.md promises, rather than a bare
   * "fetch failed" INTERNAL_SERVER_ERROR. Other errors pass through untouched.
   */
  override didEncounterError(error: Error, _request: unknown, response?: { status: number }): void {
    if (!response || (response.status >= 502 && response.status <= 504)) {
      const reason =
        error instanceof BrokenCircuitError
          ? 'its circuit is open after repeated failures'
          : error instanceof SubgraphDownError
            ? error.message
            : 'unreachable';
      throw appError(
        ErrorCode.SERVICE_UNAVAILABLE,
        `The ${this.#name} subgraph is unavailable (${reason}).`,
        {
          serviceName: this.#name,
        },
      );
    }
    throw error;
  }
}

function subgraphCallMetrics(metrics: Metrics) {
  return {
    requests: metrics.counter({
      name: 'gateway_subgraph_requests_total',
      help: 'Fetches from the gateway to a subgraph, by outcome (ok, graphql_error, error)',
      labelNames: ['subgraph', 'outcome'],
    }),
    duration: metrics.histogram({
      name: 'gateway_subgraph_request_duration_seconds',
      help: "Duration of the gateway's fetches to a subgraph",
      labelNames: ['subgraph'],
    }),
  };
}
