import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';

/** Mean number of a service's PostgreSQL connections in each state over a sampling window. */
export interface ConnectionStates {
  /** Running a statement (on CPU or in I/O). */
  running: number;
  /** Running a statement but waiting for a lock another transaction holds. */
  waitingOnLock: number;
  /** Inside a transaction, waiting for the service to send its next statement. */
  idleInTransaction: number;
  /** Open and unused (the pool has room). */
  idle: number;
}

/**
 * Samples pg_stat_activity every `everyMs` for the connections whose application_name starts
 * with `prefix` (each service connects as `<prefix><service>`), until the returned function is
 * called; it resolves with the mean connection states per service. A pool whose connections are
 * all busy is a queue in front of the database; busy but idle in transaction means the database
 * waits for the service (its CPU, or calls it makes mid-transaction).
 */
export function sampleDatabaseActivity(
  databaseUrl: string,
  prefix: string,
  everyMs = 100,
): () => Promise<Record<string, ConnectionStates>> {
  const client = new pg.Client({ connectionString: databaseUrl });
  const totals: Record<string, ConnectionStates> = {};
  let samples = 0;
  let running = true;
  const loop = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query<{ name: string; state: string | null; wait: string | null }>(
        `SELECT application_name AS name, state, wait_event_type AS wait FROM pg_stat_activity
         WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()`,
        [prefix],
      );
      samples++;
      for (const row of rows) {
        const states = (totals[row.name.slice(prefix.length)] ??= {
          running: 0,
          waitingOnLock: 0,
          idleInTransaction: 0,
          idle: 0,
        });
        if (row.state === 'active') {
          if (row.wait === 'Lock') states.waitingOnLock++;
          else states.running++;
        } else if (row.state?.startsWith('idle in transaction')) states.idleInTransaction++;
        else states.idle++;
      }
      await sleep(everyMs);
    }
    await client.end();
  })();
  return async () => {
    running = false;
    await loop;
    return Object.fromEntries(
      Object.entries(totals).map(([name, s]) => [
        name,
        {
          running: s.running / samples,
          waitingOnLock: s.waitingOnLock / samples,
          idleInTransaction: s.idleInTransaction / samples,
          idle: s.idle / samples,
        },
      ]),
    );
  };
}
