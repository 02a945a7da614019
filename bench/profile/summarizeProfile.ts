import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Where a CPU profile's time went: `node --import tsx bench/profile/summarizeProfile.ts
 * <file.cpuprofile> [top] [fromSeconds] [toSeconds]`. Prints self time by function and by package
 * (node_modules/<pkg>, node: internals, this project's files), as markdown tables. With a window,
 * only the samples that many seconds after the profile's start count (one phase of a benchmark).
 *
 * Given a directory, it reads the main thread's profile in it. Under tsx, `--cpu-prof` writes two
 * profiles per process: the main thread's (`CPU.<date>.<time>.<pid>.0.<seq>.cpuprofile`, thread
 * id 0) and the module loader thread's (thread id 1), which is nearly all idle.
 */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [path, topArg, fromArg, toArg] = process.argv.slice(2);
if (!path) {
  throw new Error('usage: summarizeProfile.ts <file.cpuprofile | directory> [top] [fromSeconds] [toSeconds]');
}
const file = statSync(path).isDirectory() ? mainThreadProfile(path) : path;

function mainThreadProfile(directory: string): string {
  const main = readdirSync(directory).filter((name) => /^CPU\.\d+\.\d+\.\d+\.0\.\d+\.cpuprofile$/.test(name));
  if (main.length !== 1) {
    throw new Error(`expected one main-thread profile in ${directory}, found ${main.length}: name the file`);
  }
  return join(directory, main[0]!);
}
const top = Number(topArg ?? 25);
const fromMicros = Number(fromArg ?? 0) * 1e6;
const toMicros = toArg === undefined ? Number.POSITIVE_INFINITY : Number(toArg) * 1e6;
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const selfMicros = new Map<number, number>();
let elapsedMicros = 0;
profile.samples.forEach((id, i) => {
  const delta = profile.timeDeltas[i] ?? 0;
  elapsedMicros += delta;
  if (elapsedMicros < fromMicros || elapsedMicros > toMicros) return;
  selfMicros.set(id, (selfMicros.get(id) ?? 0) + delta);
});
const total = [...selfMicros.values()].reduce((a, b) => a + b, 0);

function packageOf(url: string): string {
  if (!url) return '(native / VM)';
  if (url.startsWith('node:')) return 'node: internals';
  // The innermost package: a nested node_modules copy counts as the package that holds it.
  const match = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*node_modules\/)/.exec(url);
  if (match) return match[1]!;
  const project = /\/(gateway|lib|subgraphs|bench|scripts)\//.exec(url);
  return project ? `project ${project[1]}/` : url;
}

const byFunction = new Map<string, number>();
const byPackage = new Map<string, number>();
for (const [id, micros] of selfMicros) {
  const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
  const pkg = packageOf(url);
  const name = `${functionName || '(anonymous)'} — ${pkg}${url ? `:${url.split('/').pop()}:${lineNumber + 1}` : ''}`;
  byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
  byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + micros);
}

const table = (title: string, rows: Map<string, number>) => {
  console.log(`| ${title} | self ms | share |\n| --- | ---: | ---: |`);
  for (const [name, micros] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(
      `| ${name.replaceAll('|', '\\|')} | ${(micros / 1000).toFixed(0)} | ${((100 * micros) / total).toFixed(1)}% |`,
    );
  }
  console.log('');
};
const window =
  fromArg === undefined ? '' : ` between ${fromArg} s and ${toArg === undefined ? 'the end' : `${toArg} s`}`;
console.log(`Profile ${file}: ${(total / 1e6).toFixed(1)} s sampled${window}.\n`);
table('package', byPackage);
table('function', byFunction);
