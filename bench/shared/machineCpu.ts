import { readdir, readFile } from 'node:fs/promises';

/** Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * CPU seconds the whole machine has spent busy so far, over all cores (/proc/stat: everything
 * but idle and iowait). Its growth over a wall-clock interval ÷ the interval ÷ the core count is
 * how saturated the machine was, whoever used it.
 */
export async function machineBusySeconds(): Promise<number> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n', 1)[0]!;
  const [, ...fields] = line.trim().split(/\s+/);
  const ticks = fields.map(Number);
  const total = ticks.slice(0, 8).reduce((sum, t) => sum + t, 0);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  return (total - idle) / CLOCK_TICKS_PER_SECOND;
}

/**
 * CPU seconds (user + system) used so far by every process whose command name (/proc/<pid>/comm)
 * is one of `names`: servers this harness did not start and cannot pin (PostgreSQL backends,
 * RabbitMQ), counted for everyone who uses them.
 */
export async function cpuSecondsOfCommands(names: readonly string[]): Promise<number> {
  let ticks = 0;
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      if (!names.includes(comm)) continue;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited meanwhile
    }
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}
