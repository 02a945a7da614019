import { Writable } from 'node:stream';

/**
 * A log destination (the services' `logDestination`) that parses each JSON line the logger
 * writes and pushes it onto `lines`, for tests that read what was logged.
 */
export function collectLogLines<T>(lines: T[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as T);
      done();
    },
  });
}
