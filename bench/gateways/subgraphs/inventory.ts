import { parse } from 'graphql';
import type { BenchSubgraph } from './benchSubgraph.ts';

const inStock = new Map([
  ['1', true],
  ['2', false],
  ['3', false],
  ['4', false],
  ['5', true],
  ['6', true],
  ['7', true],
  ['8', false],
  ['9', true],
]);

interface ProductReference {
  upc: string;
  price?: number | null;
  weight?: number | null;
}

export const inventory: BenchSubgraph = {
  name: 'inventory',
  typeDefs: parse(`
    extend schema
      @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@external", "@requires"])

    type Product @key(fields: "upc") {
      upc: String!
      weight: Int @external
      price: Int @external
      inStock: Boolean
      shippingEstimate: Int @requires(fields: "price weight")
    }
  `),
  resolvers: {
    Product: {
      __resolveReference: (reference: ProductReference) => ({
        ...reference,
        inStock: inStock.get(reference.upc) ?? null,
      }),
      // Uses the @requires fields the gateway fetched from products (the Rust original ignores
      // them and always answers null; this is the federated behaviour the schema describes).
      shippingEstimate: ({ price, weight }: ProductReference) => {
        if (price == null) return null;
        if (price > 1000) return 0;
        return weight == null ? null : Math.floor(weight / 2);
      },
    },
  },
};
