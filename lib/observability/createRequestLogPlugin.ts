import type { ApolloServerPlugin } from '@apollo/server';
import { errorCodeOf } from '../errors.ts';
import type { Logger } from '../logger.ts';

/**
 * One log line per GraphQL operation (name, type, duration, error codes), written inside the
 * request's context so it carries `request_id` and `trace_id` (lib/logger.ts). The gateway logs
 * them at info; subgraphs at debug, since every client request fans out to several of them.
 */
export function createRequestLogPlugin(logger: Logger, level: 'info' | 'debug'): ApolloServerPlugin {
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operationName, operation, errors }) {
          if (!logger.isLevelEnabled(level)) return;
          logger[level](
            {
              operation: operationName ?? null,
              type: operation?.operation ?? null,
              durationMs: Math.round(Number(process.hrtime.bigint() - started) / 1e5) / 10,
              ...(errors?.length && {
                errorCodes: [...new Set(errors.map((e) => errorCodeOf(e) ?? 'INTERNAL_SERVER_ERROR'))],
              }),
            },
            'graphql operation',
          );
        },
      };
    },
  };
}
