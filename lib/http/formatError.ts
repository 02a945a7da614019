import type { GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
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
