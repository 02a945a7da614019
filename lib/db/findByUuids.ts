import { isUuid } from '../ids.ts';
import type { Queryable } from './createDatabase.ts';

/**
 * The batch function behind every entity DataLoader: one query for any number of ids, answered
 * in the order asked (null where nothing matched, malformed ids included). `sql` selects rows
 * whose key is in `$1::uuid[]`.
 */
export async function findByUuids<Row, T>(
  db: Queryable,
  sql: string,
  ids: readonly string[],
  keyOf: (row: Row) => string,
  toRecord: (row: Row) => T,
): Promise<(T | null)[]> {
  const valid = ids.filter(isUuid);
  const rows = valid.length ? await db.query<Row & object>(sql, [valid]) : [];
  const byKey = new Map(rows.map((row) => [keyOf(row), toRecord(row)]));
  return ids.map((id) => byKey.get(id.toLowerCase()) ?? null);
}
