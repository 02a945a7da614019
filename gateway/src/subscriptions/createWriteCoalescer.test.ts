import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createWriteCoalescer } from './createWriteCoalescer.ts';

/** A socket stand-in that records each batch the stream hands to the "kernel" (one per syscall). */
function recordingSocket() {
  const batches: string[][] = [];
  const socket = new Writable({
    decodeStrings: false,
    write(chunk: string, _encoding, callback) {
      batches.push([String(chunk)]);
      callback();
    },
    writev(chunks, callback) {
      batches.push(chunks.map(({ chunk }) => String(chunk)));
      callback();
    },
  });
  return { socket, batches };
}

/** A scheduler the test turns by hand: what the coalescer would run on the next setImmediate. */
function manualTurns() {
  const pending: (() => void)[] = [];
  return {
    defer: (run: () => void) => pending.push(run),
    turn() {
      const runs = pending.splice(0);
      for (const run of runs) run();
      return runs.length;
    },
  };
}

describe('createWriteCoalescer', () => {
  it('sends what was written to a held socket in one batch, in order, when its turn comes', () => {
    const turns = manualTurns();
    const coalescer = createWriteCoalescer({ defer: turns.defer });
    const { socket, batches } = recordingSocket();

    coalescer.hold(socket);
    socket.write('PENDING');
    coalescer.hold(socket);
    socket.write('metrics');
    socket.write('ack'); // anyone's write to the socket queues behind the held ones
    coalescer.hold(socket);
    socket.write('CONFIRMED');
    expect(batches).toEqual([]);
    expect(coalescer.holds(socket)).toBe(true);

    turns.turn();
    expect(batches).toEqual([['PENDING', 'metrics', 'ack', 'CONFIRMED']]);
    expect(coalescer.holds(socket)).toBe(false);
    expect(coalescer.size).toBe(0);
    expect(turns.turn()).toBe(0); // nothing left scheduled
  });

  it('releases the oldest-held sockets first, a slice per turn; one held again goes to the back', () => {
    const turns = manualTurns();
    const coalescer = createWriteCoalescer({ socketsPerTurn: 2, defer: turns.defer });
    const sockets = ['a', 'b', 'c', 'd'].map((name) => ({ name, ...recordingSocket() }));
    const sent = () => sockets.filter(({ batches }) => batches.length > 0).map(({ name }) => name);
    for (const { socket, name } of sockets) {
      coalescer.hold(socket);
      socket.write(`${name}1`);
    }

    turns.turn();
    expect(sent()).toEqual(['a', 'b']);
    // A second event reaches every client: a and b are held again, behind c and d; c and d
    // take it in the same write as the first.
    for (const { socket, name } of sockets) {
      coalescer.hold(socket);
      socket.write(`${name}2`);
    }
    turns.turn();
    expect(sockets.map(({ batches }) => batches)).toEqual([
      [['a1']],
      [['b1']],
      [['c1', 'c2']],
      [['d1', 'd2']],
    ]);
    turns.turn();
    expect(sockets.map(({ batches }) => batches)).toEqual([
      [['a1'], ['a2']],
      [['b1'], ['b2']],
      [['c1', 'c2']],
      [['d1', 'd2']],
    ]);
    expect(turns.turn()).toBe(0);
  });

  it('releaseAll sends everything held at once', () => {
    const turns = manualTurns();
    const coalescer = createWriteCoalescer({ socketsPerTurn: 1, defer: turns.defer });
    const first = recordingSocket();
    const second = recordingSocket();
    coalescer.hold(first.socket);
    first.socket.write('one');
    coalescer.hold(second.socket);
    second.socket.write('two');

    coalescer.releaseAll();
    expect([first.batches, second.batches]).toEqual([[['one']], [['two']]]);
    turns.turn(); // the slice already scheduled finds nothing to release
    expect([first.batches, second.batches]).toEqual([[['one']], [['two']]]);
  });

  it('afterRelease runs once everything held so far has gone out', () => {
    const turns = manualTurns();
    const coalescer = createWriteCoalescer({ socketsPerTurn: 1, defer: turns.defer });
    const [a, b, c] = [recordingSocket(), recordingSocket(), recordingSocket()];
    const ran: string[] = [];
    coalescer.afterRelease(() => ran.push('nothing held'));
    expect(ran).toEqual(['nothing held']);

    coalescer.hold(a.socket);
    coalescer.hold(b.socket);
    coalescer.afterRelease(() => ran.push('a and b'));
    coalescer.hold(c.socket);
    coalescer.hold(a.socket); // already in line: does not move the first fan-out's end
    coalescer.afterRelease(() => ran.push('a, b and c'));
    turns.turn();
    expect(ran).toEqual(['nothing held']);
    turns.turn();
    expect(ran).toEqual(['nothing held', 'a and b']);
    turns.turn();
    expect(ran).toEqual(['nothing held', 'a and b', 'a, b and c']);

    coalescer.hold(a.socket);
    coalescer.afterRelease(() => ran.push('at shutdown'));
    coalescer.releaseAll();
    expect(ran.at(-1)).toBe('at shutdown');
  });

  it('does not hold a destroyed socket', () => {
    const coalescer = createWriteCoalescer({ defer: () => {} });
    const { socket } = recordingSocket();
    socket.destroy();
    coalescer.hold(socket);
    expect(coalescer.holds(socket)).toBe(false);
  });
});
