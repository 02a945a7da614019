import { readFileSync } from 'node:fs';
import type { IncomingHttpHeaders } from 'node:http';
import {
  ApolloGateway,
  RemoteGraphQLDataSource,
  type GraphQLDataSourceProcessOptions,
} from '@apollo/gateway';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

/**
 * Stock Apollo Gateway on @apollo/server with default settings, as graphql-gateways-benchmark
 * runs it (one process: the harness pins it to one core). The only addition, used by the
 * heavy-query scenario alone: FORWARD_HEADER names one client header to pass on to subgraphs
 * (this project's subgraphs accept only a signed service credential).
 */
interface Context {
  headers: IncomingHttpHeaders;
}

const forwardHeader = process.env['FORWARD_HEADER']?.toLowerCase();
class ForwardingDataSource extends RemoteGraphQLDataSource<Context> {
  override willSendRequest({ request, context }: GraphQLDataSourceProcessOptions<Context>) {
    const value = forwardHeader && (context as Partial<Context> | undefined)?.headers?.[forwardHeader];
    const headers = request.http?.headers as { set(name: string, value: string): void } | undefined;
    if (typeof value === 'string' && headers) headers.set(forwardHeader!, value);
  }
}

const gateway = new ApolloGateway({
  supergraphSdl: readFileSync(process.env['SUPERGRAPH_PATH'] ?? 'supergraph.graphql', 'utf8'),
  ...(forwardHeader ? { buildService: ({ url }) => new ForwardingDataSource({ url }) } : {}),
});
const server = new ApolloServer<Context>({ gateway });
const { url } = await startStandaloneServer(server, {
  listen: { port: Number(process.env['PORT'] ?? 4000), host: process.env['HOST'] ?? '127.0.0.1' },
  context: async ({ req }) => ({ headers: req.headers }),
});
console.log(`apollo gateway ready at ${url}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop().then(() => process.exit(0)));
}
