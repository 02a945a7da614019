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

/**
 * Applies the versioned SQL files of `dir` (`001_name.sql`, `002_...`) that the schema has not
 * seen, each in its own transaction, under an advisory lock so replicas starting together
 * apply each migration once. An applied migration whose file changed stops the start: editing
 * history silently is how environments drift apart.
 */
export async function migrate(db: Database, dir: string, logger?: Logger): Promise<number[]> {
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
          version integer PRIMARY KEY,
          name text NOT NULL,
          checksum text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`);
      const [existing] = await tx.query<AppliedRow>(
        'SELECT version, checksum FROM schema_migrations WHERE version = $1',
        [migration.version],
      );
      if (existing) {
        if (existing.checksum !== checksum) {
          throw new Error(
            `migration ${migration.file} of schema ${db.schema} changed after it was applied; add a new migration instead`,
          );
        }
        return false;
      }
      await tx.exec(sql);
      await tx.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [
        migration.version,
        migration.name,
        checksum,
      ]);
      return true;
    });
    if (ran) {
      applied.push(migration.version);
      logger?.info({ schema: db.schema, migration: migration.file }, 'applied migration');
    }
  }
  return applied;
}
