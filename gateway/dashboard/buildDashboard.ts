import { readFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** One built file of the dashboard, by its name under /dashboard/assets/ (or index.html). */
export interface DashboardFile {
  name: string;
  contents: Uint8Array;
}

export interface DashboardBundle {
  /** The page, referencing its assets by their content-hashed names. */
  indexHtml: string;
  /** The content-hashed assets (script, stylesheet, source maps). */
  assets: DashboardFile[];
}

export const DASHBOARD_SOURCE_DIR = dirname(fileURLToPath(import.meta.url));
export const DASHBOARD_DIST_DIR = join(DASHBOARD_SOURCE_DIR, 'dist');
/** Where the page finds its assets; the gateway serves them there. */
export const ASSETS_PATH = '/dashboard/assets';

/**
 * Bundles the dashboard with esbuild: one minified, content-hashed script and stylesheet (names
 * change with their content, so browsers may cache them for good), and index.html pointing at
 * them. Returns the files; `scripts/buildDashboard.ts` writes them to dist/, the gateway may keep
 * them in memory.
 */
export async function buildDashboard(): Promise<DashboardBundle> {
  // esbuild is a build tool: loaded only when a bundle is built, never to serve a prebuilt one.
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [join(DASHBOARD_SOURCE_DIR, 'src', 'main.ts')],
    bundle: true,
    minify: true,
    sourcemap: 'linked',
    format: 'esm',
    platform: 'browser',
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    entryNames: '[name]-[hash]',
    outdir: join(DASHBOARD_SOURCE_DIR, 'dist', 'assets'),
    metafile: true,
    write: false,
    legalComments: 'linked',
    logLevel: 'silent',
  });
  const assets = result.outputFiles.map((file) => ({ name: basename(file.path), contents: file.contents }));
  const script = Object.entries(result.metafile.outputs).find(([, output]) => output.entryPoint);
  const stylesheet = script?.[1].cssBundle;
  if (!script || !stylesheet) throw new Error('the dashboard build produced no script or no stylesheet');
  const url = (path: string) => `${ASSETS_PATH}/${basename(path)}`;
  const template = await readFile(join(DASHBOARD_SOURCE_DIR, 'index.html'), 'utf8');
  const indexHtml = template.replace('%SCRIPT%', url(script[0])).replace('%STYLESHEET%', url(stylesheet));
  return { indexHtml, assets };
}
