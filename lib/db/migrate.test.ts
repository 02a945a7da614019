import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testConfig, uniqueSchemaPrefix } from '../../test/support/testConfig.ts';
import type { Database } from './createDatabase.ts';
import { migrate } from './migrate.ts';
import { openServiceDatabase } from './openServiceDatabase.ts';

const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) {
    if (db.kind === 'postgres') await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  }
});

async function freshDatabase() {
  const db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}migrate` });
  opened.push(db);
  return db;
}

async function migrationsDir(files: Record<string, string>) {
  const dir = await mkdtemp(join(tmpdir(), 'migrations-'));
  for (const [name, sql] of Object.entries(files)) await writeFile(join(dir, name), sql);
  return dir;
}

describe('migrations', () => {
  it('apply in version order once, in the service schema', async () => {
    const db = await freshDatabase();
    const dir = await migrationsDir({
      '002_add_column.sql': 'ALTER TABLE things ADD COLUMN label text',
      '001_create.sql': 'CREATE TABLE things (id int PRIMARY KEY)',
      'README.md': 'not a migration',
    });
    expect(await migrate(db, dir)).toEqual([`${db.schema}:1`, `${db.schema}:2`]);
    expect(await migrate(db, dir)).toEqual([]);
    await db.query("INSERT INTO things (id, label) VALUES (1, 'one')");
    const [row] = await db.query<{ schema: string }>(
      "SELECT table_schema AS schema FROM information_schema.tables WHERE table_name = 'things' AND table_schema = $1",
      [db.schema],
    );
    expect(row?.schema).toBe(db.schema);
  });

  it('a failing migration leaves nothing half-applied', async () => {
    const db = await freshDatabase();
    const dir = await migrationsDir({
      '001_broken.sql': 'CREATE TABLE half (id int); SELECT no_such_function();',
    });
    await expect(migrate(db, dir)).rejects.toThrow();
    const tables = await db.query(
      "SELECT 1 FROM information_schema.tables WHERE table_name = 'half' AND table_schema = $1",
      [db.schema],
    );
    expect(tables).toEqual([]);
  });

  it('refuses to start when an applied migration was edited', async () => {
    const db = await freshDatabase();
    const dir = await migrationsDir({ '001_create.sql': 'CREATE TABLE things (id int)' });
    await migrate(db, dir);
    await writeFile(join(dir, '001_create.sql'), 'CREATE TABLE things (id bigint)');
    await expect(migrate(db, dir)).rejects.toThrow(/changed after it was applied/);
  });

  it('components keep their own version sequences', async () => {
    const db = await freshDatabase();
    const service = await migrationsDir({ '001_things.sql': 'CREATE TABLE things (id int)' });
    const shared = await migrationsDir({ '001_other.sql': 'CREATE TABLE other (id int)' });
    const sources = [
      { component: 'service', dir: service },
      { component: 'shared', dir: shared },
    ];
    expect(await migrate(db, sources)).toEqual(['service:1', 'shared:1']);
    expect(await migrate(db, sources)).toEqual([]);
  });

  it('replicas migrating at once apply each migration once', async () => {
    const db = await freshDatabase();
    const dir = await migrationsDir({ '001_create.sql': 'CREATE TABLE things (id int PRIMARY KEY)' });
    const results = await Promise.all([migrate(db, dir), migrate(db, dir), migrate(db, dir)]);
    expect(results.flat()).toEqual([`${db.schema}:1`]);
  });
});
