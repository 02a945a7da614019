import { readdir, readFile } from 'node:fs/promises';
import { extname, join } from 'node:path';
import express, { type Request, type Response, type Router } from 'express';
import type { DashboardBundle } from '../../dashboard/buildDashboard.ts';
import type { Logger } from '../../../lib/logger.ts';

export interface ServeDashboardOptions {
  logger: Logger;
  /** Serve the prebuilt bundle (`npm run build`) rather than bundling the source on first use. */
  production: boolean;
  /** Where the prebuilt bundle lives; gateway/dashboard/dist by default. */
  distDir?: string;
}

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
};
// A hostname or an IP literal with an optional port: anything else never reaches the CSP header.
const SAFE_HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

/**
 * The live dashboard at /dashboard and its assets at /dashboard/assets/. In production it serves
 * the bundle built at build time (gateway/dashboard/dist); elsewhere, and when dist is missing,
 * it bundles the source with esbuild on the first request and keeps it in memory, so a
 * development gateway never serves a stale page and parallel test gateways never race on files.
 */
export function serveDashboard({ logger, production, distDir }: ServeDashboardOptions): Router {
  let loading: Promise<LoadedBundle> | undefined;
  const bundle = () => {
    loading ??= loadBundle({ logger, production, distDir }).catch((error: unknown) => {
      loading = undefined;
      throw error;
    });
    return loading;
  };

  const router = express.Router();
  router.get(['/dashboard', '/dashboard/'], async (req, res) => {
    const loaded = await bundleOr503(bundle, res, logger);
    if (!loaded) return;
    securityHeaders(req, res);
    res.set('cache-control', 'no-cache');
    res.type('html').send(loaded.indexHtml);
  });
  router.get('/dashboard/assets/:name', async (req, res) => {
    const loaded = await bundleOr503(bundle, res, logger);
    if (!loaded) return;
    const asset = loaded.assets.get(req.params.name);
    securityHeaders(req, res);
    if (!asset) {
      res.status(404).type('text').send('Not found');
      return;
    }
    // Names carry a hash of their content: a new build means new names, so these never change.
    res.set('cache-control', 'public, max-age=31536000, immutable');
    res.type(CONTENT_TYPES[extname(req.params.name)] ?? 'application/octet-stream').send(Buffer.from(asset));
  });
  return router;
}

interface LoadedBundle {
  indexHtml: string;
  assets: Map<string, Uint8Array>;
}

async function loadBundle({ logger, production, distDir }: ServeDashboardOptions): Promise<LoadedBundle> {
  const { buildDashboard, DASHBOARD_DIST_DIR } = await import('../../dashboard/buildDashboard.ts');
  if (production) {
    const prebuilt = await readPrebuilt(distDir ?? DASHBOARD_DIST_DIR);
    if (prebuilt) return toLoaded(prebuilt);
    logger.warn(
      { distDir: distDir ?? DASHBOARD_DIST_DIR },
      'no prebuilt dashboard (npm run build): bundling it now',
    );
  }
  const started = Date.now();
  const built = await buildDashboard();
  logger.info({ ms: Date.now() - started }, 'dashboard bundled from source');
  return toLoaded(built);
}

async function readPrebuilt(dir: string): Promise<DashboardBundle | undefined> {
  try {
    const indexHtml = await readFile(join(dir, 'index.html'), 'utf8');
    const names = await readdir(join(dir, 'assets'));
    const assets = await Promise.all(
      names.map(async (name) => ({ name, contents: await readFile(join(dir, 'assets', name)) })),
    );
    return { indexHtml, assets };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function toLoaded(bundle: DashboardBundle): LoadedBundle {
  return { indexHtml: bundle.indexHtml, assets: new Map(bundle.assets.map((a) => [a.name, a.contents])) };
}

async function bundleOr503(bundle: () => Promise<LoadedBundle>, res: Response, logger: Logger) {
  try {
    return await bundle();
  } catch (error) {
    logger.error({ err: error }, 'the dashboard could not be built');
    res.status(503).type('text').send('The dashboard is not available: its bundle could not be built.');
    return undefined;
  }
}

/**
 * Only this origin's own files run (no inline script, no CDN); the page may open its graphql-ws
 * socket to this same host (CSP3 lets 'self' cover ws:, but not every browser does yet).
 */
function securityHeaders(req: Request, res: Response) {
  const host = req.headers.host;
  const sockets = host && SAFE_HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  res.set({
    'content-security-policy': [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "img-src 'self' data:",
      `connect-src 'self'${sockets}`,
      "base-uri 'none'",
      "form-action 'none'",
      "frame-ancestors 'none'",
    ].join('; '),
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  });
}
