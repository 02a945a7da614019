import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawnPinned, type PinnedProcess } from './processes.ts';

/** The end of a process's log, for error messages. */
export function tail(file: string): string {
  try {
    return readFileSync(file, 'utf8').slice(-3_000);
  } catch {
    return '(no log)';
  }
}

/** Waits until `url` answers `{ __typename }` with 200 (or the process dies, or time runs out). */
export async function waitForGraphQL(url: string, process: PinnedProcess, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (process.child.exitCode !== null) break;
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: '{ __typename }' }),
      });
      if (response.status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(`${url} never answered; see ${process.logFile}:\n${tail(process.logFile)}`);
}

/**
 * Starts a benchmark backend (a script that builds this project's system and seeds it) pinned to
 * `cpus`, and waits for the one JSON line starting `{"ready":true` that it prints when it is
 * ready to serve: that line, parsed, is `ready`.
 */
export async function startSystemProcess<T>(options: {
  cpus: string;
  nodeArgs: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  openFiles?: number;
  timeoutMs?: number;
}): Promise<{ process: PinnedProcess; ready: T }> {
  const process = spawnPinned(options.cpus, options.nodeArgs, {
    env: options.env,
    logFile: options.logFile,
    ...(options.openFiles !== undefined ? { openFiles: options.openFiles } : {}),
  });
  const deadline = Date.now() + (options.timeoutMs ?? 180_000);
  for (;;) {
    const line = tail(options.logFile)
      .split('\n')
      .find((l) => l.startsWith('{"ready":true'));
    if (line) return { process, ready: JSON.parse(line) as T };
    if (Date.now() > deadline || process.child.exitCode !== null) {
      await process.stop();
      throw new Error(`the benchmark system did not start:\n${tail(options.logFile)}`);
    }
    await sleep(500);
  }
}
