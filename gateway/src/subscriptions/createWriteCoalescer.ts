/** The part of a client's TCP socket the coalescer drives (`net.Socket`, a `Writable`). */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
  readonly destroyed: boolean;
}

/**
 * Sockets released per turn of the event loop: ~1.5 ms of `writev` on loopback, so HTTP requests
 * and upstream events are served between slices of a flush to thousands of clients.
 */
const SOCKETS_PER_TURN = 128;

/**
 * Coalesces a fan-out's writes to each client socket (issue #7, bench/results/subscriptions-fanout.md).
 *
 * At 10,000 WebSocket clients, one event costs 10,000 `writev` syscalls, and they were half of
 * the gateway's fan-out CPU. The events of one order (PENDING, CONFIRMED, two metrics pushes)
 * arrive within a few hundred milliseconds, so while one fan-out was still being written the
 * next was queued behind it: each client got each event in its own syscall, and a CONFIRMED
 * waited for every write of the fan-outs before it.
 *
 * Here a delivery only frames the message into its socket, corked ({@link hold}); the socket
 * is released (uncorked: one `writev` of everything held) later, oldest-held first, in slices
 * between which the event loop turns. An event that arrives while a fan-out is still being
 * flushed joins the clients not yet released in the same syscall. Order per socket is kept by
 * the socket itself: every write to it (graphql-ws's acks, pongs, completes, close frames)
 * queues behind the held ones.
 */
export function createWriteCoalescer({
  socketsPerTurn = SOCKETS_PER_TURN,
  defer = setImmediate,
}: {
  socketsPerTurn?: number;
  /** Schedules the next slice (tests pass a manual scheduler). */
  defer?: (run: () => void) => unknown;
} = {}) {
  /**
   * Held sockets, each with its place in line (a count of holds), in the order they were first
   * held since their last release. A Map iterates in insertion order, so places only grow.
   */
  const held = new Map<CorkableSocket, number>();
  let lastHeld = 0;
  /** Everything held at or before this place has been released. */
  let releasedUpTo = 0;
  /** Callbacks waiting for a place to be released, in the order of their places. */
  const waiting: { place: number; run: () => void }[] = [];
  let scheduled = false;

  const settle = () => {
    while (waiting.length > 0 && waiting[0]!.place <= releasedUpTo) waiting.shift()!.run();
  };

  const releaseSlice = () => {
    scheduled = false;
    let released = 0;
    // Deleting the current entry is safe, and a socket held again during this slice (a write
    // from an uncork's callback) goes to the back.
    for (const [socket, place] of held) {
      if (released === socketsPerTurn) break;
      held.delete(socket);
      releasedUpTo = place;
      socket.uncork();
      released += 1;
    }
    if (held.size === 0) releasedUpTo = lastHeld;
    settle();
    schedule();
  };

  function schedule() {
    if (scheduled || held.size === 0) return;
    scheduled = true;
    defer(releaseSlice);
  }

  return {
    /**
     * Holds `socket`'s writes until its turn to be released: call before writing to it. A
     * socket already held stays where it is in line.
     */
    hold(socket: CorkableSocket): void {
      if (held.has(socket) || socket.destroyed) return;
      socket.cork();
      held.set(socket, ++lastHeld);
      schedule();
    },

    /**
     * Runs `callback` once every socket held so far has been released (at once if none is held):
     * after a fan-out, when the last of its clients' bytes went to the kernel. Sockets held by
     * other fan-outs before that moment count too, so for one event this is an upper bound.
     */
    afterRelease(callback: () => void): void {
      if (releasedUpTo >= lastHeld) {
        callback();
        return;
      }
      waiting.push({ place: lastHeld, run: callback });
    },

    /** Whether `socket`'s writes are being held: its unsent bytes are then ours, not a backlog. */
    holds(socket: CorkableSocket): boolean {
      return held.has(socket);
    },

    /** Releases every held socket now (shutdown: the close frames must go out). */
    releaseAll(): void {
      for (const socket of held.keys()) socket.uncork();
      held.clear();
      releasedUpTo = lastHeld;
      settle();
    },

    /** Sockets waiting for their turn. */
    get size() {
      return held.size;
    },
  };
}
export type WriteCoalescer = ReturnType<typeof createWriteCoalescer>;
