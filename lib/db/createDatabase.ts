import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

/** What both a pooled connection and a transaction can do. */
export interface Queryable {
  query<R extends object = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<R[]>;
  /** Runs a script of several statements (migrations); takes no parameters. */
  exec(sql: string): Promise<void>;
}

/**
 * A service's own database: one PostgreSQL schema, reached with the same SQL whether it lives
 * on a real PostgreSQL server or on embedded PGlite.
 */
export interface Database extends Queryable {
  readonly schema: string;
  readonly kind: 'postgres' | 'pglite';
  /** Code inside `fn` must use `tx`, never the outer database (PGlite has a single connection). */
  transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  schema: string;
  /**
   * Called with each statement's SQL; tests count queries with it (N+1 checks). A transaction
   * reports its `BEGIN` and its `COMMIT` (or `ROLLBACK`) too: on a server each is a round trip.
   */
  onQuery?: (sql: string) => void;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

function checkSchema(schema: string): string {
  // The schema is interpolated into SET search_path, so it must be a plain identifier.
  if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name ${JSON.stringify(schema)}`);
  return schema;
}

/** PostgreSQL's answer to a prepared statement whose result columns a migration changed. */
const isStalePreparedStatement = (error: unknown) =>
  (error as { code?: unknown } | null)?.code === '0A000' &&
  /cached plan must not change result type/.test((error as Error).message);

export function createPostgresDatabase(
  options: DatabaseOptions & {
    url: string;
    maxConnections?: number;
    /** Distinct statements prepared per connection at most; those beyond are sent unprepared. */
    maxPreparedStatements?: number;
  },
): Database {
  const schema = checkSchema(options.schema);
  const pool = new pg.Pool({
    connectionString: options.url,
    max: options.maxConnections ?? 10,
    // Every connection of this pool sees only this service's schema first.
    options: `-c search_path=${schema}`,
  });
  // An idle client's error (server restart) must not crash the process; the pool replaces it.
  pool.on('error', () => {});
  const onQuery = options.onQuery;
  // Each statement is prepared once per connection, named after its text, and then only bound
  // and executed: the server neither parses nor (once it settles on a generic plan) plans it
  // again, which halved its CPU for the saga's statements (issue #7). The code's statements are
  // a fixed set; the cap bounds what a connection holds should some text be built per call.
  const maxPrepared = options.maxPreparedStatements ?? 500;
  const names = new Map<string, string | null>();
  const nameOf = (sql: string): string | undefined => {
    let name = names.get(sql);
    if (name === undefined) {
      name = names.size < maxPrepared ? `s${names.size}` : null;
      names.set(sql, name);
    }
    return name ?? undefined;
  };
  const wrap = (client: pg.Pool | pg.PoolClient, inTransaction: boolean): Queryable => ({
    async query<R extends object>(sql: string, params?: readonly unknown[]) {
      onQuery?.(sql);
      const values = params as unknown[] | undefined;
      const name = nameOf(sql);
      try {
        const result = await client.query(name ? { name, text: sql, values } : { text: sql, values });
        return result.rows as R[];
      } catch (error) {
        // A migration changed what the statement returns (SELECT * of an altered table) while
        // connections held it prepared: it is sent unprepared from now on. Outside a
        // transaction it is retried at once; inside, the transaction failed and its caller retries.
        if (!name || !isStalePreparedStatement(error)) throw error;
        names.set(sql, null);
        if (inTransaction) throw error;
        const result = await client.query({ text: sql, values });
        return result.rows as R[];
      }
    },
    async exec(sql: string) {
      onQuery?.(sql);
      await client.query(sql);
    },
  });
  let closed: Promise<void> | undefined;
  return {
    schema,
    kind: 'postgres',
    ...wrap(pool, false),
    async transaction(fn) {
      const client = await pool.connect();
      try {
        onQuery?.('BEGIN');
        await client.query('BEGIN');
        const result = await fn(wrap(client, true));
        onQuery?.('COMMIT');
        await client.query('COMMIT');
        client.release();
        return result;
      } catch (error) {
        try {
          onQuery?.('ROLLBACK');
          await client.query('ROLLBACK');
          client.release();
        } catch (rollbackError) {
          // A connection that cannot roll back is broken: destroy it rather than reuse it.
          client.release(rollbackError as Error);
        }
        throw error;
      }
    },
    async ping() {
      await pool.query('SELECT 1');
    },
    close() {
      closed ??= pool.end();
      return closed;
    },
  };
}

/** An embedded PostgreSQL (PGlite): in memory for `:memory:`, else persisted in `dataDir`. */
export async function createEmbeddedPostgres(dataDir: string): Promise<PGlite> {
  return PGlite.create(dataDir === ':memory:' ? undefined : dataDir);
}

/**
 * A service's schema on a PGlite instance, which several services of one process may share.
 * PGlite has one session, so each statement runs in a short transaction that sets the schema
 * locally; the search_path of one service can then never leak into another's statement.
 */
export function createPgliteDatabase(
  options: DatabaseOptions & { pglite: PGlite; ownsInstance: boolean },
): Database {
  const schema = checkSchema(options.schema);
  const { pglite, onQuery } = options;
  const setPath = `SET LOCAL search_path TO ${schema}`;
  type Tx = Parameters<Parameters<PGlite['transaction']>[0]>[0];
  const wrap = (tx: Tx): Queryable => ({
    async query<R extends object>(sql: string, params?: readonly unknown[]) {
      onQuery?.(sql);
      const result = await tx.query<R>(sql, params as unknown[] | undefined);
      return result.rows;
    },
    async exec(sql: string) {
      onQuery?.(sql);
      await tx.exec(sql);
    },
  });
  let closed: Promise<void> | undefined;
  // A shared instance outlives this handle, so a closed handle must refuse work itself.
  const transaction = <T>(fn: (tx: Queryable) => Promise<T>): Promise<T> =>
    closed
      ? Promise.reject(new Error(`database ${schema} is closed`))
      : pglite.transaction(async (tx) => {
          await tx.exec(setPath);
          return fn(wrap(tx));
        });
  return {
    schema,
    kind: 'pglite',
    query: (sql, params) => transaction((tx) => tx.query(sql, params)),
    exec: (sql) => transaction((tx) => tx.exec(sql)),
    // Reported like PostgreSQL's, so that counts of round trips agree on both backends.
    async transaction(fn) {
      onQuery?.('BEGIN');
      try {
        const result = await transaction(fn);
        onQuery?.('COMMIT');
        return result;
      } catch (error) {
        onQuery?.('ROLLBACK');
        throw error;
      }
    },
    async ping() {
      await transaction((tx) => tx.query('SELECT 1'));
    },
    close() {
      closed ??= options.ownsInstance ? pglite.close() : Promise.resolve();
      return closed;
    },
  };
}

export function isUniqueViolation(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === '23505';
}
