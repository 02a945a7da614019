import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface ServiceProcess {
  /** The subgraph's GraphQL URL, from its "ready" log line. */
  url: string;
  pid: number;
  /** Everything it logged, for failure messages. */
  lines: string[];
  /** Resolves with the signal that ended it (or its exit code). */
  exited: Promise<NodeJS.Signals | number | null>;
  /** A real `kill -9`: no handler runs, nothing is flushed or released. */
  kill(): Promise<NodeJS.Signals | number | null>;
}

/**
 * A subgraph as its own process (`tsx subgraphs/<name>/src/main.ts`), as it runs in production,
 * resolved once it logs that it is ready. `env` is added to this process's environment; an empty
 * string unsets a variable (the config treats "" as unset).
 */
export async function startServiceProcess(
  name: string,
  env: Record<string, string>,
  { timeoutMs = 45_000 }: { timeoutMs?: number } = {},
): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', `subgraphs/${name}/src/main.ts`], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => resolve(signal ?? code)),
  );
  const ready = new RegExp(`"url":"([^"]+)"[^\\n]*${name} subgraph ready`);
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} not ready within ${timeoutMs} ms:\n${lines.join('\n')}`));
    }, timeoutMs);
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on('line', (line) => {
        lines.push(line);
        const match = line.match(ready);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]!);
        }
      });
    }
    void exited.then((how) => {
      clearTimeout(timer);
      reject(new Error(`${name} ended (${how}) before it was ready:\n${lines.join('\n')}`));
    });
  });
  return {
    url,
    pid: child.pid!,
    lines,
    exited,
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}
