import { readFileSync } from 'node:fs';

/**
 * What a heap snapshot holds: `node --import tsx bench/profile/summarizeHeapSnapshot.ts
 * <file.heapsnapshot> [top] [per]`. Prints, as a markdown table, self size and count by
 * constructor (objects), by function name (closures) or by V8 node type (strings, arrays, code…),
 * largest first; with `per`, also each row ÷ per (e.g. the number of clients connected).
 * A snapshot is taken after a full GC, so this is what is retained, not garbage.
 */
interface HeapSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const [file, topArg, perArg] = process.argv.slice(2);
if (!file) throw new Error('usage: summarizeHeapSnapshot.ts <file.heapsnapshot> [top] [per]');
const top = Number(topArg ?? 30);
const per = perArg === undefined ? undefined : Number(perArg);
const heap = JSON.parse(readFileSync(file, 'utf8')) as HeapSnapshot;
const fields = heap.snapshot.meta.node_fields;
const types = heap.snapshot.meta.node_types[0];
const width = fields.length;
const typeAt = fields.indexOf('type');
const nameAt = fields.indexOf('name');
const sizeAt = fields.indexOf('self_size');

const groups = new Map<string, { bytes: number; count: number }>();
let total = 0;
for (let i = 0; i < heap.nodes.length; i += width) {
  const type = types[heap.nodes[i + typeAt]!]!;
  const name = heap.strings[heap.nodes[i + nameAt]!]!;
  const bytes = heap.nodes[i + sizeAt]!;
  const key =
    type === 'object' ? name : type === 'closure' ? `closure ${name || '(anonymous)'}` : `(${type})`;
  const group = groups.get(key) ?? { bytes: 0, count: 0 };
  group.bytes += bytes;
  group.count += 1;
  groups.set(key, group);
  total += bytes;
}

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
console.log(`Heap snapshot ${file}: ${mib(total)} MiB in ${heap.nodes.length / width} objects.\n`);
console.log(
  `| retained by | MiB | count | share |${per ? ` bytes ÷ ${per} | count ÷ ${per} |` : ''}\n| --- | ---: | ---: | ---: |${per ? ' ---: | ---: |' : ''}`,
);
for (const [key, { bytes, count }] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top)) {
  console.log(
    `| ${key.replaceAll('|', '\\|').slice(0, 80)} | ${mib(bytes)} | ${count} | ${((100 * bytes) / total).toFixed(1)}% |${per ? ` ${(bytes / per).toFixed(0)} | ${(count / per).toFixed(1)} |` : ''}`,
  );
}
