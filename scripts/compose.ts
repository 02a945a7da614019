/**
 * npm run compose: supergraph.yaml -> supergraph.graphql (committed; the gateway serves it and
 * reloads it when it changes). Errors and hints are printed one per line; errors exit 1.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { composeSupergraph } from '../gateway/src/supergraph/composeSupergraph.ts';

const configPath = resolve(process.argv[2] ?? 'supergraph.yaml');
const outputPath = resolve(process.argv[3] ?? 'supergraph.graphql');

const outcome = await composeSupergraph(configPath);
if (!outcome.ok) {
  console.error(`Composition failed with ${outcome.errors.length} error(s):`);
  for (const error of outcome.errors) console.error(`  ✖ ${error}`);
  process.exit(1);
}
for (const hint of outcome.hints) console.warn(`  hint ${hint}`);
await writeFile(
  outputPath,
  outcome.supergraphSdl.endsWith('\n') ? outcome.supergraphSdl : `${outcome.supergraphSdl}\n`,
);
console.log(`Composed ${outcome.subgraphs.map((s) => s.name).join(', ')} into ${outputPath}`);
