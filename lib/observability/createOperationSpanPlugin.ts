import type { ApolloServerPlugin } from '@apollo/server';
import { trace, type Span } from '@opentelemetry/api';

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
          nameOperationSpan(span, operation?.operation ?? 'unknown', operationName ?? null);
        },
        async willSendResponse({ errors }) {
          countSpanErrors(span, errors?.length ?? 0);
        },
      };
    },
  };
}

/** The span's name and attributes for a resolved operation (also used for joined requests). */
export function nameOperationSpan(span: Span, type: string, operationName: string | null): void {
  span.updateName(`${type} ${operationName ?? 'anonymous'}`);
  span.setAttribute('graphql.operation.type', type);
  if (operationName) span.setAttribute('graphql.operation.name', operationName);
}

export function countSpanErrors(span: Span, count: number): void {
  if (count > 0) span.setAttribute('graphql.error.count', count);
}
