import { pino, type DestinationStream, type Logger } from 'pino';
import { activeTraceIds } from './observability/createTracing.ts';
import { activeRequestId } from './observability/requestId.ts';

export type { Logger };

export interface LoggerOptions {
  level: string;
  service: string;
  /** Where lines go (stdout by default; tests capture them). */
  destination?: DestinationStream;
}

/**
 * Structured JSON logs on stdout; one child logger per service so every line names its source,
 * and every line written while a request, saga step or message is being handled carries its
 * `request_id` and `trace_id`, so one order can be followed across services.
 */
export function createLogger({ level, service, destination }: LoggerOptions): Logger {
  return pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      mixin() {
        const requestId = activeRequestId();
        return requestId ? { request_id: requestId, ...activeTraceIds() } : activeTraceIds();
      },
    },
    destination,
  );
}
