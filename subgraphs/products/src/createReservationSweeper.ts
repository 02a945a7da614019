import type { Logger } from '../../../lib/logger.ts';
import { createPollingLoop } from '../../../lib/resilience/createPollingLoop.ts';
import type { ReservationStore } from './reservationStore.ts';

/**
 * One indexed query on the open reservations per round, so a short interval costs little and
 * an abandoned reservation's units come back to sale within about a second of its deadline.
 */
export const RESERVATION_SWEEP_INTERVAL_MS = 1_000;
const SWEEP_BATCH_SIZE = 100;

/**
 * Expires HELD reservations past their deadline and gives their units back, in batches. Safe
 * on every replica at once: each batch skips the rows another replica has locked.
 */
export function createReservationSweeper({
  reservations,
  logger,
  intervalMs = RESERVATION_SWEEP_INTERVAL_MS,
  batchSize = SWEEP_BATCH_SIZE,
}: {
  reservations: ReservationStore;
  logger: Logger;
  intervalMs?: number;
  batchSize?: number;
}) {
  return createPollingLoop({
    name: 'reservation sweeper',
    logger,
    pollIntervalMs: intervalMs,
    async step() {
      const expired = await reservations.expireDue(batchSize);
      if (expired > 0) logger.info({ expired }, 'expired reservations and released their stock');
      // A full batch means more may be due: sweep again at once.
      return expired === batchSize ? 0 : undefined;
    },
  });
}
