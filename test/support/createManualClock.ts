import type { Clock } from '../../lib/clock.ts';

/**
 * A clock that moves only when told (`advance`), for code that takes a Clock: timers fire in
 * time order, each at its own time, and the work their callbacks start (promises) settles
 * before the clock moves on.
 */
export function createManualClock(start = 0) {
  let now = start;
  let nextId = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  /** Lets promise chains started by a callback run (microtasks, then one macrotask turn). */
  const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

  const clock: Clock & { advance(ms: number): Promise<void> } = {
    now: () => now,
    setTimeout(fn, ms) {
      const id = nextId++;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return () => timers.delete(id);
    },
    async advance(ms) {
      const until = now + ms;
      await settle();
      for (;;) {
        // The earliest due timer (the first set, among those due at the same time).
        let due: [number, { at: number; fn: () => void }] | undefined;
        for (const entry of timers)
          if (entry[1].at <= until && (!due || entry[1].at < due[1].at)) due = entry;
        if (!due) break;
        timers.delete(due[0]);
        now = due[1].at;
        due[1].fn();
        await settle();
      }
      now = until;
    },
  };
  return clock;
}
