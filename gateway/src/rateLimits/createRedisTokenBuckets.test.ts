import { randomUUID } from 'node:crypto';
import { createServer as createHttpServer } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../../../lib/http/listen.ts';
import { createLogger } from '../../../lib/logger.ts';
import { createRedisTokenBuckets } from './createRedisTokenBuckets.ts';

const shape = { capacity: 2, refillPerSecond: 0.001 };

function captureLogs() {
  const lines: { msg?: string; level?: number }[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()) as { msg?: string });
      done();
    },
  });
  return { lines, logger: createLogger({ level: 'info', service: 'test', destination }) };
}

/** A local port with nothing listening on it (bound once, then released). */
async function freePort(): Promise<number> {
  const probe = createHttpServer();
  const port = await listen(probe, 0, '127.0.0.1');
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

const closers: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
});

describe('rate-limit buckets on Redis', () => {
  it('start on this replica’s memory when Redis is unreachable, and still limit', async () => {
    const { lines, logger } = captureLogs();
    const buckets = createRedisTokenBuckets({
      url: `redis://127.0.0.1:${await freePort()}`,
      keyPrefix: 'test:',
      logger,
    });
    closers.push(() => buckets.close());
    await buckets.connect();
    expect(lines.map((l) => l.msg)).toContain(
      'redis unreachable at start: rate limits fall back to this replica until it answers',
    );
    await expect(buckets.ping()).rejects.toThrow();
    expect(await buckets.take('k', 2, shape)).toMatchObject({ allowed: true });
    expect(await buckets.take('k', 1, shape)).toMatchObject({ allowed: false });
  });

  const redisUrl = process.env['REDIS_URL'];
  const redisRequired = process.env['CI'] === 'true';
  it.skipIf(!redisUrl && !redisRequired)(
    'share the buckets in Redis again once it answers, without a restart',
    async () => {
      if (!redisUrl) throw new Error('CI=true requires REDIS_URL');
      const target = new URL(redisUrl);
      const port = await freePort();
      const { lines, logger } = captureLogs();
      const keyPrefix = `test:${randomUUID()}:`;
      const late = createRedisTokenBuckets({ url: `redis://127.0.0.1:${port}`, keyPrefix, logger });
      closers.push(() => late.close());
      await late.connect();
      expect(await late.take('k', 1, shape)).toMatchObject({ allowed: true }); // in memory

      // Redis "comes back": a relay to the real one opens on the port the buckets keep trying.
      const sockets = new Set<Socket>();
      const relay: Server = createServer((socket) => {
        const upstream = connect(Number(target.port || 6379), target.hostname);
        for (const end of [socket, upstream]) {
          sockets.add(end);
          end.on('close', () => sockets.delete(end));
          end.on('error', () => {});
        }
        socket.pipe(upstream).pipe(socket);
      });
      await new Promise<void>((resolve) => relay.listen(port, '127.0.0.1', resolve));
      closers.push(async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => relay.close(resolve));
      });
      const deadline = Date.now() + 15_000;
      while (!lines.some((l) => l.msg === 'redis is back: rate limits are shared again')) {
        if (Date.now() > deadline) throw new Error(`redis never came back: ${JSON.stringify(lines)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
        await late.take('probe', 1, shape);
      }
      // What it takes now is in Redis: another replica, connected from the start, sees it.
      const other = createRedisTokenBuckets({ url: redisUrl, keyPrefix, logger });
      closers.push(() => other.close());
      await other.connect();
      expect(await late.take('shared', 2, shape)).toMatchObject({ allowed: true });
      expect(await other.take('shared', 1, shape)).toMatchObject({ allowed: false });
    },
  );
});
