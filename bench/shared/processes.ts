import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux). */
const CLOCK_TICKS_PER_SECOND = 100;

export interface PinnedProcess {
  child: ChildProcess;
  pid: number;
  logFile: string;
  /** Resolves once the process has exited. */
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

/**
 * The command that runs `node <args>` pinned to `cpus` with taskset, and with `openFiles` as its
 * file-descriptor limit (`ulimit -n`, for thousands of sockets) when given. Every step execs the
 * next, so the spawned pid is node's.
 */
function pinnedCommand(cpus: string, nodeArgs: string[], openFiles?: number): [string, string[]] {
  const pinned = ['taskset', '-c', cpus, process.execPath, ...nodeArgs];
  if (openFiles === undefined) return [pinned[0]!, pinned.slice(1)];
  return ['bash', ['-c', 'ulimit -n "$1" && shift && exec "$@"', 'bench', String(openFiles), ...pinned]];
}

/**
 * Starts `node <args>` pinned to `cpus` (see pinnedCommand). Output goes to `logFile`, read when
 * something fails; `stdin: true` leaves stdin open for a line protocol (stdout is also readable).
 */
export function spawnPinned(
  cpus: string,
  nodeArgs: string[],
  options: { env: NodeJS.ProcessEnv; cwd?: string; logFile: string; openFiles?: number; stdin?: boolean },
): PinnedProcess {
  const [command, args] = pinnedCommand(cpus, nodeArgs, options.openFiles);
  const child = spawn(command, args, {
    env: options.env,
    cwd: options.cwd,
    stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  const log = createWriteStream(options.logFile);
  child.stdout!.pipe(log);
  child.stderr!.pipe(log);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    pid: child.pid!,
    logFile: options.logFile,
    exited,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const done = await Promise.race([exited.then(() => true), sleep(10_000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
    },
  };
}

/** Runs `node <args>` pinned to `cpus` and resolves with its stdout (rejects on a non-zero exit). */
export function runPinned(
  cpus: string,
  nodeArgs: string[],
  env: NodeJS.ProcessEnv,
  openFiles?: number,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const [command, args] = pinnedCommand(cpus, nodeArgs, openFiles);
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('exit', (code) =>
      code === 0 ? resolve(stdout) : reject(new Error(`exit ${code}: ${stderr.slice(-2_000)}`)),
    );
  });
}

/** The process and its descendants (Hive Gateway may fork workers). */
async function processTree(pid: number): Promise<number[]> {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = (await readFile(`/proc/${tree[i]}/task/${tree[i]}/children`, 'utf8')).trim().split(/\s+/);
    } catch {
      continue;
    }
    for (const child of tasks) if (child) tree.push(Number(child));
  }
  return tree;
}

/** CPU seconds (user + system) used so far by the process tree. */
export async function cpuSeconds(pid: number): Promise<number> {
  let ticks = 0;
  for (const member of await processTree(pid)) {
    try {
      const stat = await readFile(`/proc/${member}/stat`, 'utf8');
      // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // exited between the listing and the read
    }
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** Resident memory of the process tree, in MiB. */
export async function rssMiB(pid: number): Promise<number> {
  let kib = 0;
  for (const member of await processTree(pid)) {
    try {
      const status = await readFile(`/proc/${member}/status`, 'utf8');
      kib += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    } catch {
      // exited
    }
  }
  return kib / 1024;
}

/** Samples the peak RSS of a process tree until `stop` is called. */
export function samplePeakRss(pid: number, everyMs = 250) {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      peak = Math.max(peak, await rssMiB(pid));
      await sleep(everyMs);
    }
  })();
  return async () => {
    running = false;
    await loop;
    return Math.max(peak, await rssMiB(pid));
  };
}

/**
 * The hard limit on open files (`ulimit -Hn`) a process started here may raise its own to:
 * without CAP_SYS_RESOURCE a container cannot go past it.
 */
export function hardOpenFilesLimit(): number {
  const text = execFileSync('bash', ['-c', 'ulimit -Hn']).toString().trim();
  return text === 'unlimited' ? Number.POSITIVE_INFINITY : Number(text);
}

/** Moves this process (all its threads) onto `cpus`, off the core under test. */
export function pinSelf(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}
