import type { ApolloServerPlugin } from '@apollo/server';
import { trace } from '@opentelemetry/api';

/**
 * Names the request's span after the GraphQL operation (`mutation placeOrder`), which is what
 * someone reading a trace looks for, and marks it failed when the response carries errors.
 */
export function createOperationSpanPlugin(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      const span = trace.getActiveSpan();
      if (!span) return;
      return {
        async didResolveOperation({ operation, operationName }) {
          const type = operation?.operation ?? 'unknown';
          span.updateName(`${type} ${operationName ?? 'anonymous'}`);
          span.setAttribute('graphql.operation.type', type);
          if (operationName) span.setAttribute('graphql.operation.name', operationName);
        },
        async willSendResponse({ errors }) {
          if (errors?.length) span.setAttribute('graphql.error.count', errors.length);
        },
      };
    },
  };
}
