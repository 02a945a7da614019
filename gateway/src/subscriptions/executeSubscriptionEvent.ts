import {
  executeQueryPlan,
  type GraphQLDataSource,
  type GraphQLDataSourceProcessOptions,
} from '@apollo/gateway';
import type { QueryPlan } from '@apollo/query-planner';
import type { ExecutionResult, FormattedExecutionResult } from 'graphql';
import type { Logger } from '../../../lib/logger.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import type { SubscriptionPlan } from './createSubscriptionPlanner.ts';

type ExecuteQueryPlanArgs = Parameters<typeof executeQueryPlan>;

/**
 * Turns one event of the primary subscription into the client's result, with @apollo/gateway's
 * own executeQueryPlan: the plan `Sequence(primary, rest)` runs with the primary fetch answered
 * from the event instead of the network. Reusing it (rather than a small executor of our own)
 * keeps what Apollo gets right and a rewrite would get subtly wrong: `_entities`
 * representations built from `requires` (with @requires and input/output rewrites), deep merges
 * of partial entities, error paths mapped back through Flatten nodes, and the final shaping to
 * the API schema (aliases, @inaccessible, __typename, null propagation of non-null fields).
 */
export async function executeSubscriptionEvent({
  plan,
  event,
  variables,
  context,
  logger,
}: {
  plan: SubscriptionPlan;
  event: FormattedExecutionResult;
  variables: Record<string, unknown>;
  context: GatewayContext;
  logger: Logger;
}): Promise<ExecutionResult> {
  const { primary, rest } = plan;
  const owner = plan.dataSources[primary.serviceName];
  let answered = false;
  // The owning subgraph's first fetch is the primary one (it heads the Sequence); any later
  // fetch to the same subgraph in `rest` goes over HTTP as usual.
  const ownerWithEvent: GraphQLDataSource = {
    async process(options: GraphQLDataSourceProcessOptions) {
      if (!answered && options.request.query === primary.operation) {
        answered = true;
        return event;
      }
      if (!owner) throw new Error(`no data source for ${primary.serviceName}`);
      return owner.process(options);
    },
  };
  const queryPlan: QueryPlan = {
    kind: 'QueryPlan',
    node: rest ? { kind: 'Sequence', nodes: [primary, rest] } : primary,
  };
  const requestContext = {
    request: { variables },
    context,
    logger,
    // executeQueryPlan records subgraph error paths here (for usage reporting, unused by us).
    metrics: {},
  } as unknown as ExecuteQueryPlanArgs[2];
  return executeQueryPlan(
    queryPlan,
    { ...plan.dataSources, [primary.serviceName]: ownerWithEvent },
    requestContext,
    plan.operationContext,
    plan.supergraphSchema,
    plan.apiSchema,
  );
}
