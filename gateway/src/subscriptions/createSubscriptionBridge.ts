import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  OperationTypeNode,
  parse,
  validate,
  type DocumentNode,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import { createTextCache } from '../../../lib/graphql/createTextCache.ts';
import type { Viewer } from '../../../lib/auth/tokens.ts';
import { ApolloServerErrorCode } from '@apollo/server/errors';
import { appError, ErrorCode, unauthenticated } from '../../../lib/errors.ts';
import { requestErrors } from '../../../lib/http/formatError.ts';
import { operationLimitError, type OperationLimits } from '../plugins/useOperationLimits.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { SubscriptionPlanner } from './createSubscriptionPlanner.ts';
import type { SharedSubscriptions } from './createSharedSubscriptions.ts';
import { createSubscriberQueue, type SharedResult } from './createSubscriberQueue.ts';
import { printDocument } from './printDocument.ts';

export interface ClientOperation {
  query: string;
  operationName?: string | null | undefined;
  variables?: Record<string, unknown> | null | undefined;
}

export interface SubscribeOptions {
  document: DocumentNode;
  operationName: string | undefined;
  variables: Record<string, unknown>;
  viewer: Viewer | null;
  /** When the client's token expires (ms since epoch): the subscription then ends UNAUTHENTICATED. */
  expiresAt?: number | undefined;
  /** Bytes the client's transport has not sent yet. */
  transportBytes: () => number;
  /** The client reads too slowly: the transport drops it. */
  onOverflow: () => void;
  /**
   * Writes a result to the client at once, when it has nothing waiting (createSubscriberQueue);
   * without it, every result goes through the returned iterator.
   */
  send?: (event: SharedResult) => void;
}

// setTimeout fires at once beyond this (about 24.8 days).
const MAX_TIMER_MS = 2 ** 31 - 1;

/** JSON with sorted object keys, so `{a, b}` and `{b, a}` name the same subscription. */
function stableJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The subscription bridge: what @apollo/gateway cannot do. A client's subscription is planned
 * by @apollo/query-planner into a primary subscription (to the subgraph owning the root field)
 * and a rest plan (entity fields of other subgraphs); the primary runs over graphql-ws, shared
 * by identical subscriptions, and each event goes through the rest plan before it reaches the
 * client. Transports (graphql-ws, graphql-sse) call `prepare` then `subscribe`.
 */
export function createSubscriptionBridge({
  planner,
  shared,
  maxBufferedBytes,
  limits,
  hideSchemaDetails,
  logger,
}: {
  planner: SubscriptionPlanner;
  shared: SharedSubscriptions;
  maxBufferedBytes: number;
  /** The same depth, alias and root-field limits as HTTP operations (OPERATION_LIMIT). */
  limits: OperationLimits & { maxTokens: number };
  /** No "Did you mean …?" in errors (production), as Apollo Server's hideSchemaDetailsFromClientErrors. */
  hideSchemaDetails: boolean;
  logger: Logger;
}) {
  // Coded as Apollo Server codes them on HTTP (GRAPHQL_VALIDATION_FAILED, …), so every error a
  // client gets carries extensions.code whatever the transport.
  const rejected = (errors: readonly GraphQLError[], code: Parameters<typeof requestErrors>[1]) =>
    requestErrors(errors, code, { hideSchemaDetails });
  // Parsed documents by their text, with the schema they last passed validation against, as
  // Apollo Server keeps them for HTTP: thousands of clients subscribe with the same text, and
  // parsing and validating each one was 42 % of the CPU of connecting them (issue #7); they also
  // share one AST instead of each keeping its own with its tokens. Only valid documents are kept.
  const documents = createTextCache<{ document: DocumentNode; validFor: GraphQLSchema }>();

  /** Parses and validates a text against `schema`; keeps it when valid. */
  function parseAndValidate(schema: GraphQLSchema, query: string): DocumentNode | GraphQLError[] {
    let document: DocumentNode;
    try {
      // The token limit, as HTTP requests have it (requestLimits.ts), before any parsing work.
      document = parse(query, { maxTokens: limits.maxTokens });
    } catch (error) {
      if (error instanceof GraphQLError && /more than \d+ tokens/.test(error.message)) {
        return [
          appError(ErrorCode.OPERATION_LIMIT, `The operation has more than ${limits.maxTokens} tokens.`, {
            limit: 'tokens',
            max: limits.maxTokens,
          }),
        ];
      }
      return rejected(
        [error instanceof GraphQLError ? error : new GraphQLError('Unparsable query.')],
        ApolloServerErrorCode.GRAPHQL_PARSE_FAILED,
      );
    }
    const errors = validate(schema, document);
    if (errors.length > 0) return rejected(errors, ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED);
    documents.set(query, { document, validFor: schema });
    return document;
  }

  /** The operation a valid document names, within the limits, with its variables coerced. */
  function resolveOperation(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation: ClientOperation,
  ):
    | { document: DocumentNode; operationName: string | undefined; variables: Record<string, unknown> }
    | GraphQLError[] {
    const operationName = operation.operationName ?? undefined;
    const ast = getOperationAST(document, operationName);
    if (!ast) {
      return rejected(
        [new GraphQLError('Could not identify the operation to run.')],
        ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE,
      );
    }
    const exceeded = operationLimitError(document, ast, limits);
    if (exceeded) return [exceeded];
    if (ast.operation !== OperationTypeNode.SUBSCRIPTION) {
      // Queries and mutations go through Apollo Server over HTTP, where the operation limits,
      // rate limits and plugins apply.
      return [
        appError(
          ErrorCode.BAD_USER_INPUT,
          'Only subscriptions are served over WebSocket and event streams: send queries and mutations with HTTP POST.',
        ),
      ];
    }
    // Coerced like Apollo Server does for HTTP: a wrong or missing variable fails here, once.
    const coerced = getVariableValues(schema, ast.variableDefinitions ?? [], operation.variables ?? {});
    if (coerced.errors) return rejected(coerced.errors, ApolloServerErrorCode.BAD_USER_INPUT);
    return { document, operationName, variables: coerced.coerced };
  }

  return {
    /** Parses and validates against the public schema; only subscriptions are served here. */
    prepare(
      operation: ClientOperation,
    ):
      | { document: DocumentNode; operationName: string | undefined; variables: Record<string, unknown> }
      | GraphQLError[] {
      const schema = planner.schema();
      if (!schema) {
        return [appError(ErrorCode.SERVICE_UNAVAILABLE, 'The gateway is starting: try again shortly.')];
      }
      const cached = documents.get(operation.query);
      const document =
        cached?.validFor === schema ? cached.document : parseAndValidate(schema, operation.query);
      if (Array.isArray(document)) return document;
      return resolveOperation(schema, document, operation);
    },

    subscribe(options: SubscribeOptions): AsyncIterableIterator<ExecutionResult> | ExecutionResult {
      const { document, operationName, variables, viewer } = options;
      let plan;
      try {
        plan = planner.plan(document, operationName);
      } catch (error) {
        logger.warn({ err: error }, 'subscription could not be planned');
        return {
          errors: [
            error instanceof GraphQLError
              ? error
              : new GraphQLError('The subscription could not be planned.'),
          ],
        };
      }
      if (plan instanceof GraphQLError) return { errors: [plan] };

      // The identity scope is part of the key: events and the entity fields fetched for them
      // are what this viewer may see, so only the same viewer (id and role) may share them.
      const key = stableJson([
        plan.generation,
        plan.primary.serviceName,
        operationName ?? null,
        printDocument(document),
        variables,
        viewer ? [viewer.id, viewer.role] : null,
      ]);
      let leave = () => {};
      let expiry: NodeJS.Timeout | undefined;
      const { subscriber, iterator } = createSubscriberQueue({
        maxBytes: maxBufferedBytes,
        transportBytes: options.transportBytes,
        onOverflow: options.onOverflow,
        ...(options.send && { send: options.send }),
        onClose: () => {
          clearTimeout(expiry);
          leave();
        },
      });
      leave = shared.join({ key, plan, variables, viewer }, subscriber);
      if (options.expiresAt !== undefined) {
        expiry = setTimeout(
          () => subscriber.end({ errors: [unauthenticated('Your token has expired: log in again.')] }),
          Math.min(MAX_TIMER_MS, Math.max(0, options.expiresAt - Date.now())),
        );
      }
      return iterator;
    },
  };
}
export type SubscriptionBridge = ReturnType<typeof createSubscriptionBridge>;
