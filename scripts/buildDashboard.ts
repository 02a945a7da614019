import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildDashboard, DASHBOARD_DIST_DIR } from '../gateway/dashboard/buildDashboard.ts';

/**
 * `npm run build`: bundles the dashboard into gateway/dashboard/dist, which a production gateway
 * serves as is (the Docker image runs this at build time).
 */
const bundle = await buildDashboard();
await rm(DASHBOARD_DIST_DIR, { recursive: true, force: true });
await mkdir(join(DASHBOARD_DIST_DIR, 'assets'), { recursive: true });
await writeFile(join(DASHBOARD_DIST_DIR, 'index.html'), bundle.indexHtml);
for (const asset of bundle.assets)
  await writeFile(join(DASHBOARD_DIST_DIR, 'assets', asset.name), asset.contents);
const sizes = bundle.assets.map((a) => `${a.name} ${(a.contents.byteLength / 1024).toFixed(1)} kB`);
console.log(`dashboard built into ${DASHBOARD_DIST_DIR}:\n  ${sizes.join('\n  ')}`);
