import type {
  ApolloServerPlugin,
  BaseContext,
  GraphQLRequestContextDidResolveOperation,
} from '@apollo/server';

/** A check between a validated operation and its planning: it throws (a GraphQLError) to refuse it. */
export type OperationGuard<TContext extends BaseContext> = (
  request: GraphQLRequestContextDidResolveOperation<TContext>,
) => Promise<void>;

/**
 * Runs `guards` one after another, in the order given, once each operation is resolved: the first
 * that throws refuses it, and the guards after it never run. They are one plugin because Apollo
 * Server runs the didResolveOperation hooks of separate plugins all at once (Promise.all): as two
 * plugins, the rate limit took tokens (logIn's included) for operations that the operation limits
 * refused in the same instant.
 */
export function useOperationGuards<TContext extends BaseContext>(
  ...guards: OperationGuard<TContext>[]
): ApolloServerPlugin<TContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation(request) {
          for (const guard of guards) await guard(request);
        },
      };
    },
  };
}
