import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { unwrapResolverError, type ApolloServerErrorCode } from '@apollo/server/errors';
import { ErrorCode } from '../errors.ts';
import type { Logger } from '../logger.ts';

/**
 * Apollo Server's formatError: every error keeps its stable code; an unexpected one (a bug, a
 * database error) is logged in full and, in production, shown only as "Internal server error"
 * so neither a stack trace nor SQL text reaches a client.
 */
export function createFormatError({ logger, production }: { logger: Logger; production: boolean }) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const code = formatted.extensions?.['code'] ?? ErrorCode.INTERNAL_SERVER_ERROR;
    if (code !== ErrorCode.INTERNAL_SERVER_ERROR) return formatted;
    logger.error({ err: unwrapResolverError(error), path: formatted.path }, 'unexpected error');
    if (!production) return { ...formatted, extensions: { ...formatted.extensions, code } };
    return {
      message: 'Internal server error',
      ...(formatted.path ? { path: formatted.path } : {}),
      extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
    };
  };
}

/** Apollo Server's codes for the errors it finds before execution. */
export type RequestErrorCode =
  | ApolloServerErrorCode.GRAPHQL_PARSE_FAILED
  | ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED
  | ApolloServerErrorCode.BAD_USER_INPUT
  | ApolloServerErrorCode.OPERATION_RESOLUTION_FAILURE;

/**
 * Errors found before execution (parsing, validation, variables) as Apollo Server reports them
 * over HTTP: with its code, and, like its `hideSchemaDetailsFromClientErrors` (on in production),
 * without the "Did you mean …?" that would map the schema out to a stranger. For the transports
 * Apollo Server does not serve (graphql-ws, graphql-sse), so they answer as HTTP does.
 */
export function requestErrors(
  errors: readonly GraphQLError[],
  code: RequestErrorCode,
  { hideSchemaDetails }: { hideSchemaDetails: boolean },
): GraphQLError[] {
  return errors.map(
    (error) =>
      new GraphQLError(hideSchemaDetails ? withoutSuggestions(error.message) : error.message, {
        nodes: error.nodes,
        source: error.source,
        positions: error.positions,
        path: error.path,
        originalError: error.originalError,
        extensions: { ...error.extensions, code },
      }),
  );
}

/** The pattern of Apollo Server's own ApolloServerPluginDisableSuggestions. */
const withoutSuggestions = (message: string) => message.replace(/ ?Did you mean(.+?)\?$/, '');
