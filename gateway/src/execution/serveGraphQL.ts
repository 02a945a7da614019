import { HeaderMap, type ApolloServer } from '@apollo/server';
import type { Request, RequestHandler, Response } from 'express';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import type { Answer, InflightRequests } from './joinInflightRequests.ts';

/**
 * Apollo Server behind Express: what `@as-integrations/express5`'s `expressMiddleware` does,
 * but writing each response's bytes itself.
 *
 * Express's `res.send` turns every string body into a fresh Buffer and hashes it for an ETag.
 * For the federation benchmark's 87 KB answer those two steps cost as much as producing the
 * answer. Here the bytes of a large body are kept for the few most recent bodies, so requests
 * that shared an execution (and so the very same response string, see createResultStringifier)
 * are encoded once; and no ETag is computed: GraphQL answers are POSTed and never revalidated.
 *
 * With `inflight`, a request identical to one being answered is sent that one's answer instead of
 * running the pipeline again (joinInflightRequests.ts).
 */
export function serveGraphQL(
  server: ApolloServer<GatewayContext>,
  {
    context,
    inflight,
  }: {
    context: (args: { req: Request; res: Response }) => Promise<GatewayContext>;
    /** Identical queries in flight answered together (QUERY_INFLIGHT_DEDUPLICATION). */
    inflight?: InflightRequests;
  },
): RequestHandler {
  server.assertStarted('serveGraphQL()');
  const encode = createBodyEncoder();

  async function execute(req: Request, contextValue: () => Promise<GatewayContext>): Promise<Answer> {
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
      context: contextValue,
    });
    const answer = { status: response.status ?? 200, headers: [...response.headers] };
    if (response.body.kind === 'complete') return { ...answer, body: encode(response.body.string) };
    return { ...answer, body: undefined, chunks: response.body.asyncIterator };
  }

  return async (req, res) => {
    const started = process.hrtime.bigint();
    let answer: Answer;
    if (!inflight) {
      answer = await execute(req, () => context({ req, res }));
    } else {
      // Joining needs the viewer. A request whose credentials fail is answered by the pipeline,
      // which reports that very rejection.
      const contextValue = context({ req, res });
      const viewed = await contextValue.then(
        (value) => value,
        () => undefined,
      );
      answer = viewed
        ? await inflight.answer(req, viewed, started, (value) => execute(req, async () => value))
        : await execute(req, () => contextValue);
    }
    for (const [key, value] of answer.headers) res.setHeader(key, value);
    res.statusCode = answer.status;
    if (answer.body) {
      res.setHeader('content-length', answer.body.length);
      res.end(answer.body);
      return;
    }
    for await (const chunk of answer.chunks ?? []) res.write(chunk);
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
