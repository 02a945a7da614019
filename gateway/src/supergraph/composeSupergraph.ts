import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { composeServices } from '@apollo/composition';
import { parse, type GraphQLError } from 'graphql';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/** supergraph.yaml, rover's format (only what composition needs: local schema files). */
const supergraphConfig = z.object({
  federation_version: z.union([z.string(), z.number()]).optional(),
  subgraphs: z.record(
    z.string().regex(/^[a-z][a-z0-9_-]*$/, 'subgraph names are lowercase identifiers'),
    z.object({
      routing_url: z.url(),
      schema: z.object({ file: z.string().min(1) }),
    }),
  ),
});

export interface SubgraphDefinition {
  name: string;
  url: string;
  schemaFile: string;
}

export type CompositionOutcome =
  | { ok: true; supergraphSdl: string; hints: string[]; subgraphs: SubgraphDefinition[] }
  | { ok: false; errors: string[] };

export async function readSupergraphConfig(configPath: string): Promise<SubgraphDefinition[]> {
  const parsed = supergraphConfig.safeParse(parseYaml(await readFile(configPath, 'utf8')));
  if (!parsed.success) {
    throw new Error(
      `${configPath}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  const base = dirname(configPath);
  return Object.entries(parsed.data.subgraphs).map(([name, subgraph]) => ({
    name,
    url: subgraph.routing_url,
    schemaFile: resolve(base, subgraph.schema.file),
  }));
}

const describe = (error: GraphQLError) => {
  const code = error.extensions['code'];
  return `${typeof code === 'string' ? `[${code}] ` : ''}${error.message}`;
};

/** Composes the subgraphs of supergraph.yaml with @apollo/composition (what rover runs). */
export async function composeSupergraph(configPath: string): Promise<CompositionOutcome> {
  const subgraphs = await readSupergraphConfig(configPath);
  const services = await Promise.all(
    subgraphs.map(async (subgraph) => {
      const sdl = await readFile(subgraph.schemaFile, 'utf8');
      try {
        return { name: subgraph.name, url: subgraph.url, typeDefs: parse(sdl) };
      } catch (error) {
        throw new Error(`${subgraph.schemaFile}: ${(error as Error).message}`);
      }
    }),
  );
  const result = composeServices(services);
  if (result.errors) return { ok: false, errors: result.errors.map(describe) };
  return {
    ok: true,
    supergraphSdl: result.supergraphSdl,
    hints: result.hints.map((hint) => `[${hint.definition.code}] ${hint.message}`),
    subgraphs,
  };
}
