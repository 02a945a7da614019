import { parse } from 'graphql';
import type { BenchSubgraph } from './benchSubgraph.ts';

const LOREM =
  'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est laborum.';
const SED =
  'Sed ut perspiciatis unde omnis iste natus error sit voluptatem accusantium doloremque laudantium, totam rem aperiam, eaque ipsa quae ab illo inventore veritatis et quasi architecto beatae vitae dicta sunt explicabo. Nemo enim ipsam voluptatem quia voluptas sit aspernatur aut odit aut fugi';
const QUIA =
  'sed quia consequuntur magni dolores eos qui ratione voluptatem sequi nesciunt. Neque porro quisquam est, qui dolorem ipsum quia dolor sit amet, consectetur, adipisci velit, sed quia non numquam eius modi tempora incidunt ut labore et dolore magnam aliquam quaerat voluptatem.';
const MINIMA =
  'Ut enim ad minima veniam, quis nostrum exercitationem ullam corporis suscipit laboriosam, nisi ut aliquid ex ea commodi consequatur? Quis autem';
const VERO =
  'At vero eos et accusamus et iusto odio dignissimos ducimus qui blanditiis praesentium voluptatum deleniti atque corrupti quos dolores et quas molestias excepturi sint occaecati cupiditate non provident, similique sunt in culpa qui officia deserunt mollitia animi, id est laborum et dolorum fuga. Et harum quidem rerum facilis est et expedita distinctio. Nam libero tempore, cum soluta nobis est eligendi optio cumque nihil impedit quo minus id quod maxime placeat facere possimus, omnis voluptas assumenda est, omnis dolor repellendus. Temporibus autem quibusdam et aut officiis debitis aut rerum necessitatibus saepe eveniet ut et voluptates repudiandae sint et molestiae non recusandae. Itaque earum rerum hic tenetur a sapiente delectus, ut aut reiciendis voluptatibus maiores alias consequatur aut perferendis doloribus asperiores repellat.';

/** The same eleven reviews as graphql-gateways-benchmark's reviews subgraph. */
const reviews = [
  [LOREM, '1'],
  [SED, '1'],
  [QUIA, '1'],
  [MINIMA, '1'],
  [LOREM, '2'],
  [SED, '2'],
  [QUIA, '2'],
  [MINIMA, '2'],
  [MINIMA, '3'],
  [MINIMA, '4'],
  [VERO, '4'],
].map(([body, upc], index) => ({ id: String(index + 1), body: body!, product: { upc: upc! } }));

// As in the original: every author is user 1, and every user's reviews are the first two.
const authorReviews = reviews.slice(0, 2);

export const reviewsSubgraph: BenchSubgraph = {
  name: 'reviews',
  typeDefs: parse(`
    extend schema
      @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@external", "@provides", "@shareable"])

    type Review @key(fields: "id") {
      id: ID!
      body: String
      product: Product
      author: User @provides(fields: "username")
    }

    type User @key(fields: "id") {
      id: ID!
      username: String @external @shareable
      reviews: [Review]
    }

    type Product @key(fields: "upc") {
      upc: String!
      reviews: [Review]
    }
  `),
  resolvers: {
    Review: {
      __resolveReference: ({ id }: { id: string }) => reviews.find((review) => review.id === id) ?? null,
      author: () => ({ id: '1', username: 'urigo' }),
    },
    User: {
      __resolveReference: ({ id }: { id: string }) => ({ id, username: 'user' }),
      reviews: () => authorReviews,
    },
    Product: {
      __resolveReference: ({ upc }: { upc: string }) => ({ upc }),
      reviews: ({ upc }: { upc: string }) => reviews.filter((review) => review.product.upc === upc),
    },
  },
};
