import { HeaderMap, type ApolloServer, type BaseContext } from '@apollo/server';
import type { Request, RequestHandler, Response } from 'express';

/**
 * Apollo Server behind Express: what `@as-integrations/express5`'s `expressMiddleware` does,
 * but writing each response's bytes itself.
 *
 * Express's `res.send` turns every string body into a fresh Buffer and hashes it for an ETag.
 * For the federation benchmark's 87 KB answer those two steps cost as much as producing the
 * answer. Here the bytes of a large body are kept for the few most recent bodies, so requests
 * that shared an execution (and so the very same response string, see createResultStringifier)
 * are encoded once; and no ETag is computed: GraphQL answers are POSTed and never revalidated.
 */
export function serveGraphQL<TContext extends BaseContext>(
  server: ApolloServer<TContext>,
  { context }: { context: (args: { req: Request; res: Response }) => Promise<TContext> },
): RequestHandler {
  server.assertStarted('serveGraphQL()');
  const encode = createBodyEncoder();
  return async (req, res) => {
    const headers = new HeaderMap();
    for (const [key, value] of Object.entries(req.headers)) {
      if (value !== undefined) headers.set(key, Array.isArray(value) ? value.join(', ') : value);
    }
    const queryStart = req.url.indexOf('?');
    const response = await server.executeHTTPGraphQLRequest({
      httpGraphQLRequest: {
        method: req.method.toUpperCase(),
        headers,
        search: queryStart === -1 ? '' : req.url.slice(queryStart),
        // Parsed (and size-limited) by createRequestLimits before this handler.
        body: req.body as unknown,
      },
      context: () => context({ req, res }),
    });
    for (const [key, value] of response.headers) res.setHeader(key, value);
    res.statusCode = response.status ?? 200;
    if (response.body.kind === 'complete') {
      const bytes = encode(response.body.string);
      res.setHeader('content-length', bytes.length);
      res.end(bytes);
      return;
    }
    for await (const chunk of response.body.asyncIterator) res.write(chunk);
    res.end();
  };
}

/** Bodies below this are encoded each time: Buffer.from is cheap for them. */
const SHARED_BODY_MIN_CHARS = 16_384;
/** Distinct large bodies whose bytes are kept (the answers of the executions in flight). */
const SHARED_BODIES_KEPT = 8;

/**
 * Strings to bytes, remembering the bytes of the last few large bodies. Equal strings give the
 * same bytes whether or not they are the same instance, so a hit is never wrong; V8 compares a
 * repeated instance by identity, and long strings of other lengths without reading them.
 */
function createBodyEncoder() {
  const recent = new Map<string, Buffer>();
  return (body: string): Buffer => {
    if (body.length < SHARED_BODY_MIN_CHARS) return Buffer.from(body);
    let bytes = recent.get(body);
    if (!bytes) {
      bytes = Buffer.from(body);
      if (recent.size >= SHARED_BODIES_KEPT) recent.delete(recent.keys().next().value as string);
      recent.set(body, bytes);
    }
    return bytes;
  };
}
