import { join } from 'node:path';
import type { PGlite } from '@electric-sql/pglite';
import type { Config } from '../config.ts';
import {
  createEmbeddedPostgres,
  createPgliteDatabase,
  createPostgresDatabase,
  type Database,
  type DatabaseOptions,
} from './createDatabase.ts';

/**
 * A service's database as configuration asks: its own schema on DATABASE_URL's PostgreSQL, or
 * on embedded PGlite. Services of one process share one PGlite (`shared`); a service started
 * alone opens its own in DATA_DIR/<schema> (PGlite must never be opened by two processes).
 */
export async function openServiceDatabase(
  config: Config,
  options: DatabaseOptions & { shared?: PGlite },
): Promise<Database> {
  if (config.DATABASE_URL) return createPostgresDatabase({ ...options, url: config.DATABASE_URL });
  if (options.shared)
    return createPgliteDatabase({ ...options, pglite: options.shared, ownsInstance: false });
  const dir = config.DATA_DIR === ':memory:' ? ':memory:' : join(config.DATA_DIR, options.schema);
  return createPgliteDatabase({ ...options, pglite: await createEmbeddedPostgres(dir), ownsInstance: true });
}
