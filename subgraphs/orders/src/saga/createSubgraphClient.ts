import { injectTraceHeaders } from '../../../../lib/observability/createTracing.ts';
import { BrokenCircuitError, ExponentialBackoff, handleWhen, retry } from 'cockatiel';
import { Agent, request } from 'undici';
import {
  SERVICE_CREDENTIAL_HEADER,
  type ServiceCredentials,
  type Viewer,
} from '../../../../lib/auth/tokens.ts';
import { ErrorCode } from '../../../../lib/errors.ts';
import { createCircuitBreaker } from '../../../../lib/resilience/createCircuitBreaker.ts';

/** A failed call to a sibling subgraph; `transient` says whether trying again may help. */
export class SubgraphCallError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly transient: boolean,
  ) {
    super(message);
    this.name = 'SubgraphCallError';
  }
}

/** Codes a retry cannot fix: the callee understood the call and refused it. */
const TRANSIENT_CODES = new Set<string>([ErrorCode.SERVICE_UNAVAILABLE, ErrorCode.INTERNAL_SERVER_ERROR]);

const isTransient = (error: unknown) => error instanceof SubgraphCallError && error.transient;

export interface SubgraphClientOptions {
  /** The dependency's name, for messages (one circuit breaker per client). */
  name: string;
  url: string;
  credentials: ServiceCredentials;
  /** Per attempt, unless a call gives its own. */
  timeoutMs?: number;
  /** Calls per request, the first included. */
  maxAttempts?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Consecutive transient failures that open the circuit, and how long it stays open. */
  breakerThreshold?: number;
  halfOpenAfterMs?: number;
  /** Aborts every call in flight (service stop). */
  signal?: AbortSignal;
}

export interface CallOptions {
  /** The user the call acts for; none for a service-only call. */
  viewer?: Viewer | null;
  timeoutMs?: number;
}

/**
 * A GraphQL client for a sibling subgraph, signed with this service's credential: a timeout per
 * attempt, retries with exponential backoff and jitter for transient failures only (network,
 * timeouts, 5xx, SERVICE_UNAVAILABLE) and a circuit breaker. Callers make every mutation
 * idempotent by key, so a retried call never applies twice.
 *
 * It speaks undici's `request` over its own keep-alive Agent, not `fetch` (issue #7): the saga
 * reads each reply whole, and WHATWG fetch's machinery (Web streams, Headers, Response) was
 * ~10 % of the gateway's CPU before the gateway switched the same way
 * (gateway/src/subgraphs/createSubgraphDataSource.ts). `close()` ends its idle connections.
 */
export function createSubgraphClient(options: SubgraphClientOptions) {
  const { name, url, credentials } = options;
  // Unbounded connections, like fetch's global dispatcher: the saga's calls never queue here.
  const agent = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, pipelining: 1 });
  const retryPolicy = retry(handleWhen(isTransient), {
    maxAttempts: (options.maxAttempts ?? 3) - 1, // cockatiel counts retries
    // cockatiel's default generator is decorrelated jitter.
    backoff: new ExponentialBackoff({
      initialDelay: options.initialBackoffMs ?? 100,
      maxDelay: options.maxBackoffMs ?? 2_000,
    }),
  });
  const breaker = createCircuitBreaker({
    name,
    threshold: options.breakerThreshold ?? 5,
    halfOpenAfterMs: options.halfOpenAfterMs ?? 5_000,
    isFailure: isTransient,
  });

  async function attempt<T>(
    query: string,
    variables: Record<string, unknown>,
    call: CallOptions,
  ): Promise<T> {
    const timeoutMs = call.timeoutMs ?? options.timeoutMs ?? 5_000;
    const signals = [AbortSignal.timeout(timeoutMs), ...(options.signal ? [options.signal] : [])];
    let response: Awaited<ReturnType<typeof request>>;
    try {
      response = await request(url, {
        dispatcher: agent,
        method: 'POST',
        headers: injectTraceHeaders({
          'content-type': 'application/json',
          [SERVICE_CREDENTIAL_HEADER]: await credentials.sign(call.viewer ?? null),
        }),
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.any(signals),
      });
    } catch (error) {
      const reason = options.signal?.aborted
        ? 'aborted'
        : error instanceof Error && error.name === 'TimeoutError'
          ? `no reply within ${timeoutMs} ms`
          : `unreachable (${error instanceof Error ? error.message : String(error)})`;
      throw new SubgraphCallError(
        `${name}: ${reason}`,
        ErrorCode.SERVICE_UNAVAILABLE,
        !options.signal?.aborted,
      );
    }
    const status = response.statusCode;
    let body: { data?: T | null; errors?: { message: string; extensions?: { code?: unknown } }[] };
    try {
      // Read whole, once (which also frees the connection), then parsed.
      body = JSON.parse(await response.body.text()) as typeof body;
    } catch {
      throw new SubgraphCallError(
        `${name}: HTTP ${status} without a GraphQL body`,
        ErrorCode.SERVICE_UNAVAILABLE,
        status >= 500 || status === 429,
      );
    }
    const [first] = body.errors ?? [];
    if (first) {
      const code = typeof first.extensions?.code === 'string' ? first.extensions.code : 'UNKNOWN';
      throw new SubgraphCallError(
        `${name}: ${first.message}`,
        code,
        TRANSIENT_CODES.has(code) || status >= 500,
      );
    }
    if (!body.data) {
      throw new SubgraphCallError(
        `${name}: HTTP ${status} without data`,
        ErrorCode.SERVICE_UNAVAILABLE,
        true,
      );
    }
    return body.data;
  }

  return {
    name,
    async request<T>(
      query: string,
      variables: Record<string, unknown> = {},
      call: CallOptions = {},
    ): Promise<T> {
      try {
        return await retryPolicy.execute(() => breaker.execute(() => attempt<T>(query, variables, call)));
      } catch (error) {
        if (error instanceof BrokenCircuitError) {
          throw new SubgraphCallError(
            `${name}: circuit open after repeated failures`,
            ErrorCode.SERVICE_UNAVAILABLE,
            true,
          );
        }
        throw error;
      }
    },
    close: () => agent.close(),
  };
}
export type SubgraphClient = ReturnType<typeof createSubgraphClient>;
