import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../logger.ts';
import type { Database } from './createDatabase.ts';

const MIGRATION_FILE = /^(\d{3,})_([\w-]+)\.sql$/;

interface AppliedRow {
  version: number;
  checksum: string;
}

/** A folder of versioned SQL files, and the component they belong to (versions are per component). */
export interface MigrationSource {
  component: string;
  dir: string;
}

/**
 * Applies the versioned SQL files (`001_name.sql`, `002_...`) that the schema has not seen, each
 * in its own transaction, under an advisory lock so replicas starting together apply each
 * migration once. A service's own migrations are one component; shared platform tables (the
 * outbox, processed events) are others, with their own version sequence. An applied migration
 * whose file changed stops the start: editing history silently is how environments drift apart.
 */
export async function migrate(
  db: Database,
  sources: string | MigrationSource[],
  logger?: Logger,
): Promise<string[]> {
  const list = typeof sources === 'string' ? [{ component: db.schema, dir: sources }] : sources;
  const applied: string[] = [];
  for (const source of list) {
    for (const version of await migrateComponent(db, source, logger))
      applied.push(`${source.component}:${version}`);
  }
  return applied;
}

async function migrateComponent(
  db: Database,
  { component, dir }: MigrationSource,
  logger?: Logger,
): Promise<number[]> {
  const files = (await readdir(dir))
    .map((file) => ({ file, match: MIGRATION_FILE.exec(file) }))
    .filter((f): f is { file: string; match: RegExpExecArray } => f.match !== null)
    .map(({ file, match }) => ({ file, version: Number(match[1]), name: match[2] ?? file }))
    .sort((a, b) => a.version - b.version);
  const lockKey = `migrate:${db.schema}`;
  const applied: number[] = [];
  for (const migration of files) {
    const sql = await readFile(join(dir, migration.file), 'utf8');
    const checksum = createHash('sha256').update(sql).digest('hex');
    const ran = await db.transaction(async (tx) => {
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockKey]);
      await tx.exec(`CREATE SCHEMA IF NOT EXISTS ${db.schema};
        CREATE TABLE IF NOT EXISTS ${db.schema}.schema_migrations (
          component text NOT NULL,
          version integer NOT NULL,
          name text NOT NULL,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (component, version)
        )`);
      const [existing] = await tx.query<AppliedRow>(
        'SELECT version, checksum FROM schema_migrations WHERE component = $1 AND version = $2',
        [component, migration.version],
      );
      if (existing) {
        if (existing.checksum !== checksum) {
          throw new Error(
            `migration ${component}/${migration.file} of schema ${db.schema} changed after it was applied; add a new migration instead`,
          );
        }
        return false;
      }
      await tx.exec(sql);
      await tx.query(
        'INSERT INTO schema_migrations (component, version, name, checksum) VALUES ($1, $2, $3, $4)',
        [component, migration.version, migration.name, checksum],
      );
      return true;
    });
    if (ran) {
      applied.push(migration.version);
      logger?.info({ schema: db.schema, component, migration: migration.file }, 'applied migration');
    }
  }
  return applied;
}
