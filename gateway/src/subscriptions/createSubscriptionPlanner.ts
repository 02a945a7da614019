import { buildOperationContext, type ApolloGateway, type GraphQLDataSource } from '@apollo/gateway';
import { operationFromDocument, Supergraph, type Schema } from '@apollo/federation-internals';
import { QueryPlanner, type FetchNode, type PlanNode } from '@apollo/query-planner';
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { ErrorCode } from '../../../lib/errors.ts';
import type { SubgraphEndpoint } from '../supergraph/createSupergraphManager.ts';
import { printDocument } from './printDocument.ts';

type OperationContext = ReturnType<typeof buildOperationContext>;

/** What the bridge needs to run one subscription operation against the current supergraph. */
export interface SubscriptionPlan {
  /** Which supergraph this plan was made for (a reload starts a new generation). */
  generation: number;
  /** The subscription sent to the subgraph that owns the root field. */
  primary: FetchNode;
  /** Entity fields owned by other subgraphs, fetched for each event. */
  rest: PlanNode | undefined;
  operationContext: OperationContext;
  supergraphSchema: GraphQLSchema;
  apiSchema: Schema;
  /** The subgraphs of this supergraph generation, as the gateway routes to them. */
  endpoints: Map<string, SubgraphEndpoint>;
  dataSources: Record<string, GraphQLDataSource>;
}

const PLAN_CACHE_SIZE = 500;

/**
 * Plans subscriptions with @apollo/query-planner against the supergraph the gateway serves.
 * It listens to the gateway's own schema updates, so a hot-reloaded supergraph file changes
 * new subscriptions' plans exactly when it changes queries'. Subscriptions already running
 * keep the plan they started with.
 */
export function createSubscriptionPlanner({
  gateway,
  route,
  createDataSource,
}: {
  gateway: ApolloGateway;
  /** Applies the gateway's routing overrides (tests on port 0, SUBGRAPH_<NAME>_URL). */
  route: (endpoint: SubgraphEndpoint) => SubgraphEndpoint;
  createDataSource: (endpoint: SubgraphEndpoint) => GraphQLDataSource;
}) {
  let generations = 0;
  let current:
    | {
        generation: number;
        planner: QueryPlanner;
        supergraphSchema: GraphQLSchema;
        apiSchema: Schema;
        schema: GraphQLSchema;
        endpoints: Map<string, SubgraphEndpoint>;
        dataSources: Record<string, GraphQLDataSource>;
        plans: Map<string, SubscriptionPlan>;
      }
    | undefined;

  const unsubscribe = gateway.onSchemaLoadOrUpdate(({ apiSchema, coreSupergraphSdl }) => {
    // The gateway validated this SDL already (and keeps serving the previous one if it failed).
    const supergraph = Supergraph.build(coreSupergraphSdl, { validateSupergraph: false });
    const endpoints = new Map(supergraph.subgraphsMetadata().map((e) => [e.name, route(e)]));
    current = {
      generation: (generations += 1),
      endpoints,
      dataSources: Object.fromEntries([...endpoints].map(([name, e]) => [name, createDataSource(e)])),
      planner: new QueryPlanner(supergraph),
      supergraphSchema: supergraph.schema.toGraphQLJSSchema(),
      apiSchema: supergraph.apiSchema(),
      schema: apiSchema,
      plans: new Map(),
    };
  });

  return {
    /** The public (API) schema operations are validated against; undefined before the first load. */
    schema: (): GraphQLSchema | undefined => current?.schema,

    /** Plans a validated subscription document. */
    plan(document: DocumentNode, operationName: string | undefined): SubscriptionPlan | GraphQLError {
      const generation = current;
      if (!generation) {
        return new GraphQLError('The gateway has no supergraph yet.', {
          extensions: { code: ErrorCode.SERVICE_UNAVAILABLE },
        });
      }
      const cacheKey = `${operationName ?? ''}\0${printDocument(document)}`;
      const cached = generation.plans.get(cacheKey);
      if (cached) return cached;
      const operationContext = buildOperationContext({
        schema: generation.schema,
        operationDocument: document,
        ...(operationName ? { operationName } : {}),
      });
      const operation = operationFromDocument(generation.apiSchema, document, {
        ...(operationName ? { operationName } : {}),
      });
      const queryPlan = generation.planner.buildQueryPlan(operation);
      if (queryPlan.node?.kind !== 'Subscription') {
        return new GraphQLError('Only subscriptions are planned here.', {
          extensions: { code: ErrorCode.BAD_USER_INPUT },
        });
      }
      const plan: SubscriptionPlan = {
        generation: generation.generation,
        primary: queryPlan.node.primary,
        rest: queryPlan.node.rest,
        operationContext,
        supergraphSchema: generation.supergraphSchema,
        apiSchema: generation.apiSchema,
        endpoints: generation.endpoints,
        dataSources: generation.dataSources,
      };
      if (generation.plans.size >= PLAN_CACHE_SIZE) generation.plans.clear();
      generation.plans.set(cacheKey, plan);
      return plan;
    },

    stop: () => unsubscribe(),
  };
}
export type SubscriptionPlanner = ReturnType<typeof createSubscriptionPlanner>;
