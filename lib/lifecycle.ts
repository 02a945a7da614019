import type { Logger } from './logger.ts';

/**
 * The one signal handler of a process: SIGINT/SIGTERM run `stop` once and exit 0 when it
 * finishes (1 if it fails); a second signal, or a stop slower than `graceMs`, exits at once.
 */
export function onShutdownSignal(stop: () => Promise<void>, logger: Logger, graceMs = 15_000): void {
  let stopping = false;
  const shutdown = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    const timer = setTimeout(() => {
      logger.error({ graceMs }, 'shutdown took too long: exiting');
      process.exit(1);
    }, graceMs);
    timer.unref();
    stop().then(
      () => {
        logger.info('stopped cleanly');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}

/** Runs teardowns in reverse order of registration, once, even when some of them fail. */
export function createDisposableStack() {
  const teardowns: (() => Promise<void> | void)[] = [];
  let disposing: Promise<void> | undefined;
  return {
    defer(teardown: () => Promise<void> | void) {
      teardowns.push(teardown);
    },
    dispose(): Promise<void> {
      disposing ??= (async () => {
        const errors: unknown[] = [];
        for (const teardown of teardowns.reverse()) {
          try {
            await teardown();
          } catch (error) {
            errors.push(error);
          }
        }
        if (errors.length === 1) throw errors[0];
        if (errors.length > 1) throw new AggregateError(errors, 'several teardowns failed');
      })();
      return disposing;
    },
  };
}
export type DisposableStack = ReturnType<typeof createDisposableStack>;

/**
 * A dependency that cannot come back (a broker after its reconnects ran out): exit non-zero so
 * a supervisor restarts the process, rather than limp on with a dead connection.
 */
export function exitOnFatal(logger: Logger, error: unknown): never {
  logger.fatal({ err: error }, 'unrecoverable failure: exiting');
  process.exit(1);
}
