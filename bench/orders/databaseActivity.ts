import { readFile } from 'node:fs/promises';
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

export interface DatabaseActivity {
  /** Per service. */
  connections: Record<string, ConnectionStates>;
  /** CPU seconds of each service's PostgreSQL backends (server processes) during the window. */
  backendCpuSeconds: Record<string, number>;
}

/** CPU seconds (user + system) of a process so far; undefined once it has exited. */
async function cpuSecondsOf(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/**
 * Samples pg_stat_activity every `everyMs` for the connections whose application_name starts
 * with `prefix` (each service connects as `<prefix><service>`), until the returned function is
 * called; it resolves with the mean connection states per service, and the CPU time of those
 * connections' server processes (not the other users of a shared PostgreSQL). A pool whose
 * connections are all busy is a queue in front of the database; busy but idle in transaction
 * means the database waits for the service (its CPU, or calls it makes mid-transaction).
 */
export function sampleDatabaseActivity(
  databaseUrl: string,
  prefix: string,
  everyMs = 100,
): () => Promise<DatabaseActivity> {
  const client = new pg.Client({ connectionString: databaseUrl });
  const totals: Record<string, ConnectionStates> = {};
  /** Per backend: its service, its CPU when first seen, and the latest reading. */
  const backends = new Map<number, { service: string; first: number; last: number }>();
  let samples = 0;
  let running = true;
  const readBackends = async () => {
    for (const [pid, backend] of backends) backend.last = (await cpuSecondsOf(pid)) ?? backend.last;
  };
  const loop = (async () => {
    await client.connect();
    while (running) {
      const { rows } = await client.query<{
        pid: number;
        name: string;
        state: string | null;
        wait: string | null;
      }>(
        `SELECT pid, application_name AS name, state, wait_event_type AS wait FROM pg_stat_activity
         WHERE starts_with(application_name, $1) AND pid <> pg_backend_pid()`,
        [prefix],
      );
      samples++;
      for (const row of rows) {
        if (!backends.has(row.pid)) {
          const cpu = (await cpuSecondsOf(row.pid)) ?? 0;
          backends.set(row.pid, { service: row.name.slice(prefix.length), first: cpu, last: cpu });
        }
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
      // A backend that exits between readings loses at most this second of its CPU time.
      if (samples % 10 === 0) await readBackends();
      await sleep(everyMs);
    }
    await readBackends();
    await client.end();
  })();
  return async () => {
    running = false;
    await loop;
    const backendCpuSeconds: Record<string, number> = {};
    for (const b of backends.values()) {
      backendCpuSeconds[b.service] = (backendCpuSeconds[b.service] ?? 0) + b.last - b.first;
    }
    const connections = Object.fromEntries(
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
    return { connections, backendCpuSeconds };
  };
}
