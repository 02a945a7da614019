import { execFile } from 'node:child_process';
import { mkdtemp, readFile, writeFile, cp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SUBGRAPH_NAMES } from '../lib/config.ts';
import { composeSupergraph } from '../gateway/src/supergraph/composeSupergraph.ts';
import { subgraphsOf } from '../gateway/src/supergraph/createSupergraphManager.ts';

const run = promisify(execFile);

describe('supergraph composition', () => {
  it('the committed supergraph.graphql is what supergraph.yaml composes to (run `npm run compose`)', async () => {
    const outcome = await composeSupergraph('supergraph.yaml');
    if (!outcome.ok) throw new Error(outcome.errors.join('\n'));
    const committed = await readFile('supergraph.graphql', 'utf8');
    expect(committed.trimEnd()).toBe(outcome.supergraphSdl.trimEnd());
  });

  it('routes every subgraph of supergraph.yaml', async () => {
    const sdl = await readFile('supergraph.graphql', 'utf8');
    expect(
      subgraphsOf(sdl)
        .map((s) => s.name)
        .sort(),
    ).toEqual([...SUBGRAPH_NAMES].sort());
  });

  it('`npm run compose` prints composition errors readably and exits 1', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'compose-'));
    await cp('subgraphs', join(dir, 'subgraphs'), { recursive: true });
    await cp('supergraph.yaml', join(dir, 'supergraph.yaml'));
    // Orders also declares Product.name, as an Int: composition must reject the conflict.
    const file = join(dir, 'subgraphs/orders/src/schema.graphql');
    const sdl = await readFile(file, 'utf8');
    await writeFile(
      file,
      sdl.replace(
        'type Product @key(fields: "id", resolvable: false) {\n  id: ID!',
        'type Product @key(fields: "id", resolvable: false) {\n  id: ID!\n  name: Int',
      ),
    );
    const failure = await run('npx', [
      'tsx',
      'scripts/compose.ts',
      join(dir, 'supergraph.yaml'),
      join(dir, 'out.graphql'),
    ]).then(
      () => null,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(/Composition failed with \d+ error/);
    expect(failure?.stderr).toMatch(/Product\.name/);
  });
});
