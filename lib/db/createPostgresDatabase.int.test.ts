import { afterEach, describe, expect, it } from 'vitest';
import { testConfig, uniqueSchemaPrefix } from '../../test/support/testConfig.ts';
import { createPostgresDatabase, type Database } from './createDatabase.ts';

/**
 * Statements on a real PostgreSQL are prepared once per connection (issue #7). Under CI=true
 * testConfig requires DATABASE_URL, so these never skip there.
 */
const url =
  process.env['DATABASE_URL'] ?? (process.env['CI'] === 'true' ? testConfig().DATABASE_URL : undefined);

const opened: Database[] = [];
afterEach(async () => {
  for (const db of opened.splice(0)) {
    await db.exec(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
    await db.close();
  }
});

async function database(options: { maxPreparedStatements?: number } = {}) {
  const db = createPostgresDatabase({
    url: url!,
    schema: `${uniqueSchemaPrefix()}prepared`,
    maxConnections: 1, // one session: pg_prepared_statements shows all of the pool's
    ...options,
  });
  opened.push(db);
  await db.exec(`CREATE SCHEMA ${db.schema}; SET search_path TO ${db.schema};
    CREATE TABLE things (id integer PRIMARY KEY, name text NOT NULL);
    INSERT INTO things VALUES (1, 'one'), (2, 'two');`);
  return db;
}

const preparedStatements = async (db: Database) =>
  (await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).map(
    (row) => row.statement,
  );

describe.skipIf(!url)('a PostgreSQL database handle', () => {
  it('prepares each statement once and runs it again by name', async () => {
    const db = await database();
    for (const id of [1, 2, 1]) {
      await db.query('SELECT name FROM things WHERE id = $1', [id]);
    }
    const statements = await preparedStatements(db);
    expect(statements.filter((text) => text === 'SELECT name FROM things WHERE id = $1')).toHaveLength(1);
  });

  it('prepares no more distinct statements than its cap, and still runs the others', async () => {
    const db = await database({ maxPreparedStatements: 2 });
    await db.query('SELECT 1 AS one');
    await db.query('SELECT 2 AS two');
    expect(await db.query('SELECT $1::int AS three', [3])).toEqual([{ three: 3 }]);
    expect(await preparedStatements(db)).toEqual(
      expect.arrayContaining(['SELECT 1 AS one', 'SELECT 2 AS two']),
    );
    expect(await preparedStatements(db)).not.toContain('SELECT $1::int AS three');
  });

  it('a statement whose result a migration changed keeps working, unprepared', async () => {
    const db = await database();
    const sql = 'SELECT * FROM things WHERE id = $1';
    expect(await db.query(sql, [1])).toEqual([{ id: 1, name: 'one' }]);
    await db.exec(`ALTER TABLE things ADD COLUMN colour text NOT NULL DEFAULT 'red'`);
    // Outside a transaction: retried at once.
    expect(await db.query(sql, [1])).toEqual([{ id: 1, name: 'one', colour: 'red' }]);
    expect(await db.transaction((tx) => tx.query(sql, [2]))).toEqual([{ id: 2, name: 'two', colour: 'red' }]);
  });

  it('inside a transaction, a statement made stale by a migration fails that transaction once', async () => {
    const db = await database();
    const sql = 'SELECT * FROM things WHERE id = $1';
    await db.transaction((tx) => tx.query(sql, [1]));
    await db.exec(`ALTER TABLE things ADD COLUMN colour text`);
    await expect(db.transaction((tx) => tx.query(sql, [1]))).rejects.toThrow(/cached plan/);
    expect(await db.transaction((tx) => tx.query(sql, [1]))).toEqual([{ id: 1, name: 'one', colour: null }]);
  });
});
