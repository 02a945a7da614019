import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { listen } from '../../../lib/http/listen.ts';
import { createLogger } from '../../../lib/logger.ts';
import { serveDashboard } from './serveDashboard.ts';

const logger = createLogger({ level: 'silent', service: 'test' });
const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function serve(options: { production: boolean; distDir?: string }) {
  const app = express();
  app.use(serveDashboard({ logger, ...options }));
  const server: Server = createServer(app);
  const port = await listen(server, 0, '127.0.0.1');
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return `http://127.0.0.1:${port}`;
}

async function tempDir() {
  const dir = await mkdtemp(join(tmpdir(), 'dashboard-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

describe('serving the dashboard', () => {
  it('in production serves the bundle built at build time, as built', async () => {
    const dist = await tempDir();
    await mkdir(join(dist, 'assets'));
    const page =
      '<!doctype html><title>prebuilt</title><script type="module" src="/dashboard/assets/app-ABC.js"></script>';
    await writeFile(join(dist, 'index.html'), page);
    await writeFile(join(dist, 'assets', 'app-ABC.js'), 'console.log("prebuilt")');
    const origin = await serve({ production: true, distDir: dist });

    const html = await fetch(`${origin}/dashboard`);
    expect(await html.text()).toBe(page);
    expect(html.headers.get('content-type')).toMatch(/^text\/html/);
    const script = await fetch(`${origin}/dashboard/assets/app-ABC.js`);
    expect(await script.text()).toBe('console.log("prebuilt")');
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(script.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect(script.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('in production without a build, bundles the source rather than failing', async () => {
    const origin = await serve({ production: true, distDir: join(await tempDir(), 'missing') });
    const html = await (await fetch(`${origin}/dashboard/`)).text();
    const [script] = html.match(/\/dashboard\/assets\/main-[\w]+\.js/) ?? [];
    expect(script).toBeDefined();
    expect((await fetch(`${origin}${script}`)).status).toBe(200);
  });

  it('answers 404 for an asset that does not exist, and never lists or escapes the directory', async () => {
    const origin = await serve({ production: false });
    expect((await fetch(`${origin}/dashboard/assets/missing.js`)).status).toBe(404);
    expect((await fetch(`${origin}/dashboard/assets/..%2F..%2Fpackage.json`)).status).toBe(404);
  });
});
