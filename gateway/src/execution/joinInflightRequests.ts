import type { ApolloServerPlugin } from '@apollo/server';
import { trace } from '@opentelemetry/api';
import { GraphQLError, OperationTypeNode } from 'graphql';
import type { Request } from 'express';
import { createTextCache } from '../../../lib/graphql/createTextCache.ts';
import { errorCodesOf } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/logger.ts';
import { recordGraphQLRequest, type Metrics } from '../../../lib/observability/createMetrics.ts';
import { countSpanErrors, nameOperationSpan } from '../../../lib/observability/createOperationSpanPlugin.ts';
import { logOperation } from '../../../lib/observability/createRequestLogPlugin.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';

/** An HTTP answer as it goes on the wire: what a joined request is sent. */
export interface Answer {
  status: number;
  headers: [string, string][];
  /** The whole body; undefined for a streamed (incremental delivery) one, which is never shared. */
  body: Buffer | undefined;
  /** The streamed body's parts. */
  chunks?: AsyncIterable<string>;
}

/** What Apollo Server resolved for the request that ran: what a joined request logs and counts. */
interface Outcome {
  operationName: string | null;
  errorCodes: string[];
}

export interface InflightRequestsDeps {
  metrics: Metrics;
  logger: Logger;
  /** Takes the caller's operation token (rate limits); throws a GraphQLError to refuse. */
  takeOperationToken: (context: GatewayContext) => Promise<void>;
}

export interface InflightRequests {
  /** Learns which operation texts are queries, and what each leading request's operation was. */
  plugin: ApolloServerPlugin<GatewayContext>;
  /**
   * Answers `req`: with the answer of an identical request already in flight when there is one
   * and it can be shared, otherwise by `execute` (Apollo Server's pipeline).
   */
  answer(
    req: Request,
    context: GatewayContext,
    started: bigint,
    execute: (context: GatewayContext) => Promise<Answer>,
  ): Promise<Answer>;
}

/**
 * Where a leading request's pipeline leaves its outcome. It rides on the context because Apollo
 * Server hands plugins a shallow copy of the context object, never the object itself: a property
 * keyed by this symbol is copied along, and the slot it holds is the leader's.
 */
const OUTCOME_SLOT = Symbol('joinInflightRequests.outcome');
interface OutcomeSlot {
  outcome?: Outcome;
}

/**
 * Identical queries in flight together answered with one response, before Apollo Server's
 * request pipeline. dedupeInflightQueries already shares the execution of identical queries, but
 * each request still went through the whole pipeline to reach it: hashing the text, resolving
 * the cached document, seven plugins' hooks, the executor, shaping and serialising the result.
 * In the federation benchmark (50 clients, one query) that pipeline was most of the gateway's
 * CPU per request once the execution itself was shared.
 *
 * Here a request that arrives while an identical one is running waits for that one's answer and
 * is sent the same status, headers and bytes. "Identical" is stricter than the execution's key:
 * same text, operation name, variables and extensions, same viewer, and the same `accept` and
 * `content-type` (Apollo Server chooses the response's media type, and admits the request, by
 * them). Only single operations POSTed as JSON join; batches, GET, persisted queries and anything
 * else take the pipeline.
 *
 * What the pipeline does for a request, a joined request still gets:
 * - authentication: its bearer token is verified (the viewer is part of the key);
 * - request limits (body size, batch, tokens) ran before this handler, as for any request;
 * - operation limits: the text is the one that passed them;
 * - rate limits: its own operation token, taken only once the answer is known to be shareable
 *   (a refused request takes the pipeline, which refuses it with the usual 429 and spends nothing);
 * - its request id, span (named after the operation), log line and request metrics, and it is
 *   counted in `gateway_deduplicated_queries_total`. While it waits it counts in
 *   `gateway_joined_queries_waiting`.
 *
 * Only `query` operations join, and only texts this gateway has already seen resolve to a query
 * (which of a document's operations runs, and its type, depend on the text alone), so a mutation
 * never waits for an identical one. An answer is shared only if it is complete and 200: a refusal,
 * an error status or a streamed answer sends the waiting requests through the pipeline on their
 * own. Nothing is cached: once the leading request has its answer, the next one runs afresh.
 */
export function joinInflightRequests({
  metrics,
  logger,
  takeOperationToken,
}: InflightRequestsDeps): InflightRequests {
  /** Texts (with their operation name: see textKey) seen resolving to a query operation. */
  const knownQueries = createTextCache<true>();
  const leaders = new Map<string, Promise<{ answer: Answer; outcome: Outcome } | undefined>>();
  const joined = metrics.counter({
    name: 'gateway_deduplicated_queries_total',
    help: 'Queries answered from an identical query already executing (in-flight deduplication)',
  });
  const waiting = metrics.gauge({
    name: 'gateway_joined_queries_waiting',
    help: 'Queries waiting for the answer of an identical query in flight',
  });

  const plugin: ApolloServerPlugin<GatewayContext> = {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, operation }) {
          if (operation?.operation !== OperationTypeNode.QUERY || request.query === undefined) return;
          knownQueries.set(textKey(request.operationName ?? null, request.query), true);
        },
        async willSendResponse({ contextValue, operation, operationName, errors }) {
          const slot = (contextValue as { [OUTCOME_SLOT]?: OutcomeSlot })[OUTCOME_SLOT];
          if (!slot || operation?.operation !== OperationTypeNode.QUERY) return;
          slot.outcome = {
            operationName: operationName ?? null,
            errorCodes: errorCodesOf(errors),
          };
        },
      };
    },
  };

  async function answer(
    req: Request,
    context: GatewayContext,
    started: bigint,
    execute: (context: GatewayContext) => Promise<Answer>,
  ): Promise<Answer> {
    // Only a text known to be a query can have a leader: anything else (mutations first) goes
    // its way without the key being built.
    const request = joinable(req);
    if (!request || !knownQueries.has(request.textKey)) return execute(context);
    const key = joinKey(req, request, context);
    const leader = leaders.get(key);
    if (leader) {
      waiting.inc();
      const shared = await leader.finally(() => waiting.dec());
      if (shared && (await admitted(context))) {
        record(shared.outcome, started);
        return shared.answer;
      }
      return execute(context);
    }

    const slot: OutcomeSlot = {};
    const answered = execute({ ...context, [OUTCOME_SLOT]: slot } as GatewayContext);
    const sharing = answered.then(
      (result) => {
        const { outcome } = slot;
        return outcome && result.status === 200 && result.body ? { answer: result, outcome } : undefined;
      },
      () => undefined,
    );
    leaders.set(key, sharing);
    void sharing.then(() => leaders.delete(key));
    return answered;
  }

  async function admitted(context: GatewayContext): Promise<boolean> {
    try {
      await takeOperationToken(context);
      return true;
    } catch (error) {
      // Refused, or the buckets failed: the pipeline answers it as it answers any such request.
      if (!(error instanceof GraphQLError)) logger.warn({ err: error }, 'rate limit check failed');
      return false;
    }
  }

  function record(outcome: Outcome, started: bigint): void {
    const durationMs = Number(process.hrtime.bigint() - started) / 1e6;
    joined.inc();
    recordGraphQLRequest(metrics, {
      operationName: outcome.operationName,
      type: OperationTypeNode.QUERY,
      durationSeconds: durationMs / 1e3,
      errorCodes: outcome.errorCodes,
    });
    logOperation(logger, 'info', { ...outcome, type: OperationTypeNode.QUERY, durationMs });
    const span = trace.getActiveSpan();
    if (span) {
      nameOperationSpan(span, OperationTypeNode.QUERY, outcome.operationName);
      countSpanErrors(span, outcome.errorCodes.length);
    }
  }

  return { plugin, answer };
}

/** JSON for the name: a name holding a line break cannot pass for part of the text. */
function textKey(operationName: string | null, query: string): string {
  return `${JSON.stringify(operationName)}\n${query}`;
}

interface JoinableRequest {
  textKey: string;
  variables: Record<string, unknown> | null;
  extensions: Record<string, unknown> | null;
}

/**
 * A request shaped to join, or undefined: a POSTed JSON object with a `query` string and
 * nothing but the optional `operationName`, `variables` and `extensions` (no persisted query).
 */
function joinable(req: Request): JoinableRequest | undefined {
  if (req.method !== 'POST') return undefined;
  const body: unknown = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const {
    query,
    operationName = null,
    variables = null,
    extensions = null,
    ...rest
  } = body as Record<string, unknown>;
  if (typeof query !== 'string' || Object.keys(rest).length > 0) return undefined;
  if (operationName !== null && typeof operationName !== 'string') return undefined;
  if (!isRecordOrNull(variables) || !isRecordOrNull(extensions)) return undefined;
  if (extensions && 'persistedQuery' in extensions) return undefined;
  return { textKey: textKey(operationName, query), variables, extensions };
}

/** What two requests must share to share an answer (see joinInflightRequests). */
function joinKey(req: Request, request: JoinableRequest, { viewer }: GatewayContext): string {
  // JSON.stringify keeps the client's key order: two orders of the same variables simply do not
  // join, which is never wrong. Only the text may hold a line break, and it comes last but one.
  return [
    req.headers.accept ?? '',
    req.headers['content-type'] ?? '',
    request.variables ? JSON.stringify(request.variables) : '',
    request.extensions ? JSON.stringify(request.extensions) : '',
    request.textKey,
    viewer ? `${viewer.role}:${viewer.id}` : 'anonymous',
  ].join('\n');
}

function isRecordOrNull(value: unknown): value is Record<string, unknown> | null {
  return value === null || (typeof value === 'object' && !Array.isArray(value));
}
