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
  /** Held sockets, in the order they were first held since their last release. */
  const held = new Set<CorkableSocket>();
  let scheduled = false;

  const releaseSlice = () => {
    scheduled = false;
    let released = 0;
    // A Set iterates in insertion order; deleting the current entry is safe, and a socket held
    // again during this slice (a write from an uncork's callback) goes to the back.
    for (const socket of held) {
      if (released === socketsPerTurn) break;
      held.delete(socket);
      socket.uncork();
      released += 1;
    }
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
      held.add(socket);
      schedule();
    },

    /** Whether `socket`'s writes are being held: its unsent bytes are then ours, not a backlog. */
    holds(socket: CorkableSocket): boolean {
      return held.has(socket);
    },

    /** Releases every held socket now (shutdown: the close frames must go out). */
    releaseAll(): void {
      for (const socket of held) socket.uncork();
      held.clear();
    },

    /** Sockets waiting for their turn. */
    get size() {
      return held.size;
    },
  };
}
export type WriteCoalescer = ReturnType<typeof createWriteCoalescer>;
