import type { GraphQLSchemaModule } from '@apollo/subgraph/dist/schema-helper/resolverMap.js';

/** One subgraph of the benchmark: its federation SDL and its resolvers over in-memory data. */
export interface BenchSubgraph extends GraphQLSchemaModule {
  name: string;
}
