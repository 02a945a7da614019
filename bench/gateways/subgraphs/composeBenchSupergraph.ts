import { composeServices } from '@apollo/composition';
import { accounts } from './accounts.ts';
import { inventory } from './inventory.ts';
import { productsSubgraph } from './products.ts';
import { reviewsSubgraph } from './reviews.ts';

/** The benchmark's supergraph, routed to the subgraphs served at `baseUrl` (one path each). */
export function composeBenchSupergraph(baseUrl: string): string {
  const result = composeServices(
    [accounts, inventory, productsSubgraph, reviewsSubgraph].map((subgraph) => ({
      name: subgraph.name,
      url: `${baseUrl}/${subgraph.name}`,
      typeDefs: subgraph.typeDefs,
    })),
  );
  if (result.errors) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.supergraphSdl;
}
