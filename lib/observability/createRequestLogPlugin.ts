import type { ApolloServerPlugin } from '@apollo/server';
import { errorCodesOf } from '../errors.ts';
import type { Logger } from '../logger.ts';

/** What one GraphQL operation's log line says. */
export interface OperationLogRecord {
  operationName: string | null;
  type: string | null;
  durationMs: number;
  errorCodes: string[];
}

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
          logOperation(logger, level, {
            operationName: operationName ?? null,
            type: operation?.operation ?? null,
            durationMs: Number(process.hrtime.bigint() - started) / 1e6,
            errorCodes: errorCodesOf(errors),
          });
        },
      };
    },
  };
}

/**
 * The line itself: also written by the gateway for a request answered from an identical one in
 * flight (gateway/src/execution/joinInflightRequests.ts), which Apollo Server's plugins never see.
 */
export function logOperation(logger: Logger, level: 'info' | 'debug', record: OperationLogRecord): void {
  if (!logger.isLevelEnabled(level)) return;
  logger[level](
    {
      operation: record.operationName,
      type: record.type,
      durationMs: Math.round(record.durationMs * 10) / 10,
      ...(record.errorCodes.length > 0 && { errorCodes: [...new Set(record.errorCodes)] }),
    },
    'graphql operation',
  );
}
