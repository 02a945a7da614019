import { pino, type Logger } from 'pino';

export type { Logger };

export interface LoggerOptions {
  level: string;
  service: string;
}

/** Structured JSON logs on stdout; one child logger per service so every line names its source. */
export function createLogger({ level, service }: LoggerOptions): Logger {
  return pino({ level, base: { service }, timestamp: pino.stdTimeFunctions.isoTime });
}
