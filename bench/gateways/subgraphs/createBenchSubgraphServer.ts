import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { buildSubgraphSchema } from '@apollo/subgraph';
import { execute, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { listen } from '../../../lib/http/listen.ts';
import type { BenchSubgraph } from './benchSubgraph.ts';

interface GraphQLBody {
  query?: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** Documents seen before; a gateway sends a handful of distinct subgraph operations. */
const MAX_CACHED_DOCUMENTS = 1_000;

/**
 * The four benchmark subgraphs on one port (`/accounts`, `/inventory`, `/products`,
 * `/reviews`), as the original serves them. Plain node:http and graphql-js with a cache of
 * parsed and validated documents: the subgraphs are the fixed cost every gateway pays, so they
 * should be cheap and identical for all. They ignore the gateway's service credential header.
 */
export function createBenchSubgraphServer(subgraphs: BenchSubgraph[]) {
  const schemas = new Map<string, GraphQLSchema>(
    subgraphs.map((subgraph) => [
      `/${subgraph.name}`,
      buildSubgraphSchema({ typeDefs: subgraph.typeDefs, resolvers: subgraph.resolvers }),
    ]),
  );
  const documents = new Map<string, Map<string, DocumentNode | readonly Error[]>>(
    [...schemas.keys()].map((path) => [path, new Map()]),
  );

  const documentFor = (path: string, schema: GraphQLSchema, query: string) => {
    const cache = documents.get(path)!;
    let entry = cache.get(query);
    if (!entry) {
      try {
        const document = parse(query);
        const errors = validate(schema, document);
        entry = errors.length > 0 ? errors : document;
      } catch (error) {
        entry = [error as Error];
      }
      if (cache.size >= MAX_CACHED_DOCUMENTS) cache.clear();
      cache.set(query, entry);
    }
    return entry;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (req.method === 'GET' && path === '/health') return send(res, 200, '{"status":"ok"}');
    const schema = schemas.get(path);
    if (!schema) return send(res, 404, '{"errors":[{"message":"not found"}]}');
    if (req.method !== 'POST') return send(res, 405, '{"errors":[{"message":"POST only"}]}');
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    let body: GraphQLBody;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as GraphQLBody;
    } catch {
      return send(res, 400, '{"errors":[{"message":"invalid JSON"}]}');
    }
    if (typeof body.query !== 'string') return send(res, 400, '{"errors":[{"message":"no query"}]}');
    const document = documentFor(path, schema, body.query);
    if (!('kind' in document)) {
      return send(res, 200, JSON.stringify({ errors: document.map((e) => ({ message: e.message })) }));
    }
    const result = await execute({
      schema,
      document,
      variableValues: body.variables,
      operationName: body.operationName,
    });
    send(res, 200, JSON.stringify(result));
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      send(res, 500, JSON.stringify({ errors: [{ message: (error as Error).message }] }));
    });
  });
  // Gateways hold keep-alive pools; never let an idle socket's timeout reset one mid-run.
  server.keepAliveTimeout = 120_000;

  return {
    start: (port: number, host: string) => listen(server, port, host),
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function send(res: ServerResponse, status: number, body: string) {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}
