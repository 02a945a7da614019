import { parse, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../lib/observability/createMetrics.ts';
import { dedupeInflightQueries, type GatewayExecutor } from './dedupeInflightQueries.ts';

type RequestContext = Parameters<GatewayExecutor>[0];
type Result = Awaited<ReturnType<GatewayExecutor>>;

/** An executor whose executions finish only when the test says so, counting how many ran. */
function controlledExecutor() {
  const runs: { context: RequestContext; finish: (result: Result) => void; fail: (e: Error) => void }[] = [];
  const executor: GatewayExecutor = (context) =>
    new Promise<Result>((finish, fail) => runs.push({ context, finish, fail }));
  return { executor, runs };
}

function request({
  query = '{ products { id } }',
  variables,
  viewer = { id: 'u1', role: 'CUSTOMER' },
}: {
  query?: string;
  variables?: Record<string, unknown>;
  viewer?: { id: string; role: string } | null;
} = {}): RequestContext {
  const document = parse(query);
  return {
    request: { query, variables },
    document,
    operation: document.definitions[0] as OperationDefinitionNode,
    operationName: null,
    queryHash: `hash:${query}`,
    context: { viewer },
  } as unknown as RequestContext;
}

describe('in-flight query deduplication', () => {
  it('identical queries in flight together run once and each gets the result', async () => {
    const { executor, runs } = controlledExecutor();
    const metrics = createMetrics({ service: 'test' });
    const deduped = dedupeInflightQueries(executor, metrics);
    const answers = Promise.all([deduped(request()), deduped(request()), deduped(request())]);
    expect(runs).toHaveLength(1);
    runs[0]!.finish({ data: { products: [{ id: 'p1' }] }, extensions: { a: 1 } });
    const [first, second, third] = await answers;
    expect(first).toEqual({ data: { products: [{ id: 'p1' }] }, extensions: { a: 1 } });
    expect(second).toEqual(first);
    expect(third).toEqual(first);
    // Each request may add its own extensions without touching another's.
    expect(second?.extensions).not.toBe(first?.extensions);
    expect(await metrics.registry.getSingleMetricAsString('gateway_deduplicated_queries_total')).toMatch(
      /gateway_deduplicated_queries_total\{service="test"\} 2/,
    );
  });

  it('runs afresh once the shared execution has settled: nothing is cached', async () => {
    const { executor, runs } = controlledExecutor();
    const deduped = dedupeInflightQueries(executor);
    const first = deduped(request());
    runs[0]!.finish({ data: { n: 1 } });
    await first;
    const second = deduped(request());
    expect(runs).toHaveLength(2);
    runs[1]!.finish({ data: { n: 2 } });
    expect(await second).toEqual({ data: { n: 2 } });
  });

  it('different viewers, variables or documents never share an execution', async () => {
    const { executor, runs } = controlledExecutor();
    const deduped = dedupeInflightQueries(executor);
    void deduped(request());
    void deduped(request({ viewer: { id: 'u2', role: 'CUSTOMER' } }));
    void deduped(request({ viewer: { id: 'u1', role: 'ADMIN' } }));
    void deduped(request({ viewer: null }));
    void deduped(request({ variables: { first: 2 } }));
    void deduped(request({ query: '{ products { id name } }' }));
    expect(runs).toHaveLength(6);
  });

  it('mutations always run once per request', async () => {
    const { executor, runs } = controlledExecutor();
    const deduped = dedupeInflightQueries(executor);
    const mutation = 'mutation { placeOrder(input: { items: [], paymentToken: "tok_visa" }) { id } }';
    void deduped(request({ query: mutation }));
    void deduped(request({ query: mutation }));
    expect(runs).toHaveLength(2);
  });

  it('a failed execution fails every request that shared it, and the next one runs again', async () => {
    const { executor, runs } = controlledExecutor();
    const deduped = dedupeInflightQueries(executor);
    const a = deduped(request());
    const b = deduped(request());
    runs[0]!.fail(new Error('subgraph exploded'));
    await expect(a).rejects.toThrow('subgraph exploded');
    await expect(b).rejects.toThrow('subgraph exploded');
    void deduped(request());
    expect(runs).toHaveLength(2);
  });
});
