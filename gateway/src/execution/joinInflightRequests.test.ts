import type { GraphQLRequestListener } from '@apollo/server';
import type { Request } from 'express';
import { GraphQLError } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/logger.ts';
import { createMetrics } from '../../../lib/observability/createMetrics.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import { joinInflightRequests, type Answer } from './joinInflightRequests.ts';

const QUERY = 'query Products { products { id } }';

function context(id = 'u1'): GatewayContext {
  return {
    viewer: { id, role: 'CUSTOMER' },
    clientIp: '127.0.0.1',
    serviceCredential: async () => 'credential',
  };
}

function httpRequest({
  body = { query: QUERY, operationName: 'Products' },
  method = 'POST',
  accept = 'application/json',
}: { body?: unknown; method?: string; accept?: string } = {}): Request {
  return { method, body, headers: { accept, 'content-type': 'application/json' } } as unknown as Request;
}

/**
 * The joiner with a stand-in for Apollo Server's pipeline: each execution runs the joiner's
 * plugin hooks as Apollo would (on a shallow copy of the context) and answers when the test says.
 */
function setUp({ refuse = () => false }: { refuse?: (context: GatewayContext) => boolean } = {}) {
  const metrics = createMetrics({ service: 'test' });
  const inflight = joinInflightRequests({
    metrics,
    logger: createLogger({ level: 'silent', service: 'test' }),
    takeOperationToken: async (value) => {
      if (refuse(value))
        throw new GraphQLError('Too many requests', { extensions: { code: 'RATE_LIMITED' } });
    },
  });
  const executions: { finish: (answer?: Partial<Answer>) => void }[] = [];
  const execute =
    (req: Request, type: 'query' | 'mutation' = 'query') =>
    async (value: GatewayContext): Promise<Answer> => {
      const hooks = (await inflight.plugin.requestDidStart!(
        {} as never,
      )) as GraphQLRequestListener<GatewayContext>;
      const body = req.body as { query: string; operationName?: string };
      const request = { query: body.query, operationName: body.operationName };
      const operation = { operation: type };
      await hooks.didResolveOperation!({ request, operation } as never);
      return new Promise<Answer>((resolve) =>
        executions.push({
          finish: (answer = {}) => {
            const contextValue = { ...value };
            void hooks.willSendResponse!({
              contextValue,
              operation,
              operationName: 'Products',
              errors: undefined,
            } as never);
            resolve({
              status: 200,
              headers: [['content-type', 'application/json']],
              body: Buffer.from('{"data":{}}'),
              ...answer,
            });
          },
        }),
      );
    };
  const send = (req: Request, value = context(), type: 'query' | 'mutation' = 'query') =>
    inflight.answer(req, value, process.hrtime.bigint(), execute(req, type));
  /** Runs one request to the end, so the joiner knows its text. */
  const learn = async (req: Request, type: 'query' | 'mutation' = 'query') => {
    const answered = send(req, context('learner'), type);
    await until(() => executions.length > 0);
    executions.shift()!.finish();
    await answered;
  };
  return { send, learn, executions, metrics };
}

async function until(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setImmediate(resolve));
}

describe('joinInflightRequests', () => {
  it("identical queries in flight get the first one's answer, executed once", async () => {
    const { send, learn, executions, metrics } = setUp();
    await learn(httpRequest());
    const answers = [send(httpRequest()), send(httpRequest()), send(httpRequest())];
    await until(() => executions.length > 0);
    executions[0]!.finish({ body: Buffer.from('{"data":{"products":[]}}') });
    const [first, second, third] = await Promise.all(answers);
    expect(executions).toHaveLength(1);
    expect(second).toBe(first);
    expect(third).toBe(first);
    expect(first!.body!.toString()).toBe('{"data":{"products":[]}}');
    expect(await metrics.registry.getSingleMetricAsString('gateway_deduplicated_queries_total')).toMatch(
      / 2$/m,
    );
  });

  it('a text not yet seen resolving to a query runs on its own, as does a mutation', async () => {
    const { send, learn, executions } = setUp();
    void send(httpRequest());
    void send(httpRequest());
    await until(() => executions.length === 2);
    for (const execution of executions.splice(0)) execution.finish();
    const mutation = httpRequest({ body: { query: 'mutation M { logOut }', operationName: 'Products' } });
    await learn(mutation, 'mutation');
    void send(mutation, context(), 'mutation');
    void send(mutation, context(), 'mutation');
    await until(() => executions.length === 2);
  });

  it('differences in viewer, variables, accept, or shape keep requests apart', async () => {
    const { send, learn, executions } = setUp();
    await learn(httpRequest());
    const requests: [Request, GatewayContext][] = [
      [httpRequest(), context()],
      [httpRequest(), context('u2')],
      [
        httpRequest({ body: { query: QUERY, operationName: 'Products', variables: { first: 1 } } }),
        context(),
      ],
      [httpRequest({ accept: 'application/graphql-response+json' }), context()],
      // Shapes that never join: GET, a batch, a persisted query, an unknown field.
      [httpRequest({ method: 'GET' }), context()],
      [httpRequest({ body: [{ query: QUERY }] }), context()],
      [httpRequest({ body: { query: QUERY, extensions: { persistedQuery: { version: 1 } } } }), context()],
      [httpRequest({ body: { query: QUERY, operationName: 'Products', id: 'x' } }), context()],
    ];
    for (const [req, value] of requests) void send(req, value);
    // The GET and the batch repeat: still on their own.
    void send(httpRequest({ method: 'GET' }), context());
    await until(() => executions.length === requests.length + 1);
  });

  it('an answer that is not a plain success is not shared: the others run on their own', async () => {
    const { send, learn, executions } = setUp();
    await learn(httpRequest());
    const answers = [send(httpRequest()), send(httpRequest())];
    await until(() => executions.length === 1);
    executions[0]!.finish({ status: 503 });
    await until(() => executions.length === 2);
    executions[1]!.finish();
    const [first, second] = await Promise.all(answers);
    expect(first!.status).toBe(503);
    expect(second!.status).toBe(200);
  });

  it('a joined request over its rate limit runs on its own (to be refused there)', async () => {
    const { send, learn, executions } = setUp({ refuse: (value) => value.viewer?.id === 'u1' });
    await learn(httpRequest());
    const leader = send(httpRequest(), context('u1'));
    await until(() => executions.length === 1);
    // Joins the leader (same viewer), then is refused its token once the answer is there.
    const follower = send(httpRequest(), context('u1'));
    executions[0]!.finish();
    await leader;
    await until(() => executions.length === 2);
    executions[1]!.finish({ status: 429 });
    expect((await follower).status).toBe(429);
  });
});
