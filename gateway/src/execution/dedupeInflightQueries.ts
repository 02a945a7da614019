import type { ApolloGateway } from '@apollo/gateway';
import { OperationTypeNode } from 'graphql';
import type { Metrics } from '../../../lib/observability/createMetrics.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';

type GatewayLoad = ApolloGateway['load'];
type LoadResult = Awaited<ReturnType<GatewayLoad>>;
export type GatewayExecutor = NonNullable<LoadResult['executor']>;
type RequestContext = Parameters<GatewayExecutor>[0];
type ExecutionResult = Awaited<ReturnType<GatewayExecutor>>;

/**
 * Identical queries in flight at the same moment share one execution of their query plan: the
 * first runs it (its subgraph fetches and the merging of their answers), the others wait for
 * its result. The field's federation benchmark turns the same idea on in Hive Gateway
 * (`inboundInflightRequestDeduplication`); a dashboard opened by many people, or many clients
 * polling one popular query, are the real-world case.
 *
 * Only the execution is shared. Every request still goes through the whole Apollo Server
 * pipeline on its own: authentication, operation limits, rate limits, metrics, logs and its own
 * response. Two requests are "identical" only when they would send the very same subgraph
 * requests: same document (query hash), operation name, variables, and the same viewer (the
 * credential the gateway signs for subgraphs carries the user and role, and subgraphs answer
 * per viewer). Mutations and anything else with effects never share: only `query` operations.
 * Nothing is cached: the moment the execution settles, the next request runs afresh.
 */
export function dedupeInflightQueries(executor: GatewayExecutor, metrics?: Metrics): GatewayExecutor {
  const inflight = new Map<string, Promise<ExecutionResult>>();
  const shared = metrics?.counter({
    name: 'gateway_deduplicated_queries_total',
    help: 'Queries answered from an identical query already executing (in-flight deduplication)',
  });
  return (requestContext) => {
    const key = dedupeKey(requestContext);
    if (key === undefined) return executor(requestContext);
    const running = inflight.get(key);
    if (running) {
      shared?.inc();
      return running.then(ownCopy);
    }
    const execution = executor(requestContext);
    inflight.set(key, execution);
    // Removed however it settles; a failure reaches every waiting request, as it would have alone.
    const forget = () => inflight.delete(key);
    execution.then(forget, forget);
    return execution.then(ownCopy);
  };
}

/**
 * Each request gets its own top-level result and extensions object: Apollo Server and plugins
 * may add to those per request. The data tree itself is only read (serialised) and is shared.
 */
function ownCopy(result: ExecutionResult): ExecutionResult {
  return result.extensions ? { ...result, extensions: { ...result.extensions } } : { ...result };
}

function dedupeKey(requestContext: RequestContext): string | undefined {
  if (requestContext.operation.operation !== OperationTypeNode.QUERY) return undefined;
  const { viewer } = requestContext.context as Partial<GatewayContext>;
  const scope = viewer ? `${viewer.role}:${viewer.id}` : 'anonymous';
  // JSON.stringify keeps the client's key order: two orders of the same variables simply do not
  // share, which is never wrong.
  const variables = requestContext.request.variables ? JSON.stringify(requestContext.request.variables) : '';
  return `${requestContext.queryHash}\n${requestContext.operationName ?? ''}\n${variables}\n${scope}`;
}

/**
 * The gateway as Apollo Server sees it, with in-flight deduplication around its executor. The
 * subscription bridge keeps using the ApolloGateway itself.
 */
export function withInflightDeduplication(gateway: ApolloGateway, metrics?: Metrics) {
  return {
    onSchemaLoadOrUpdate: gateway.onSchemaLoadOrUpdate.bind(gateway),
    stop: () => gateway.stop(),
    async load(options: Parameters<GatewayLoad>[0]): Promise<LoadResult> {
      const loaded = await gateway.load(options);
      return { ...loaded, executor: loaded.executor && dedupeInflightQueries(loaded.executor, metrics) };
    },
  };
}
