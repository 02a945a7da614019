import { parse } from 'graphql';
import type { BenchSubgraph } from './benchSubgraph.ts';

/** Who wrote the reviews: the accounts subgraph of graphql-gateways-benchmark, same data. */
const users = [
  { id: '1', name: 'Uri Goldshtein', username: 'urigo', birthday: 1234567890 },
  { id: '2', name: 'Dotan Simha', username: 'dotansimha', birthday: 1234567890 },
  { id: '3', name: 'Kamil Kisiela', username: 'kamilkisiela', birthday: 1234567890 },
  { id: '4', name: 'Arda Tanrikulu', username: 'ardatan', birthday: 1234567890 },
  { id: '5', name: 'Gil Gardosh', username: 'gilgardosh', birthday: 1234567890 },
  { id: '6', name: 'Laurin Quast', username: 'laurin', birthday: 1234567890 },
];

export const accounts: BenchSubgraph = {
  name: 'accounts',
  typeDefs: parse(`
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", "@shareable"])

    type Query {
      me: User
      user(id: ID!): User
      users: [User]
    }

    type User @key(fields: "id") {
      id: ID!
      name: String
      username: String @shareable
      birthday: Int
    }
  `),
  resolvers: {
    Query: {
      me: () => users[0],
      user: (_: unknown, { id }: { id: string }) => users.find((user) => user.id === id) ?? null,
      users: () => users,
    },
    User: {
      __resolveReference: ({ id }: { id: string }) => users.find((user) => user.id === id) ?? null,
    },
  },
};
