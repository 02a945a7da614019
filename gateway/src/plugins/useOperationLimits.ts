import type { BaseContext } from '@apollo/server';
import type { DocumentNode, GraphQLError, OperationDefinitionNode } from 'graphql';
import { appError, ErrorCode } from '../../../lib/errors.ts';
import { measureOperation, type OperationMeasures } from './measureOperation.ts';
import type { OperationGuard } from './useOperationGuards.ts';

export interface OperationLimits {
  maxDepth: number;
  maxAliases: number;
  maxRootFields: number;
}

const checks: {
  measure: keyof OperationMeasures;
  limit: keyof OperationLimits;
  message: (actual: number, max: number) => string;
}[] = [
  {
    measure: 'depth',
    limit: 'maxDepth',
    message: (actual, max) => `The operation is ${actual} levels deep; at most ${max} are allowed.`,
  },
  {
    measure: 'aliases',
    limit: 'maxAliases',
    message: (actual, max) => `The operation has ${actual} aliases; at most ${max} are allowed.`,
  },
  {
    measure: 'rootFields',
    limit: 'maxRootFields',
    message: (actual, max) => `The operation asks for ${actual} root fields; at most ${max} are allowed.`,
  },
];

/**
 * Rejects operations that are too deep, carry too many aliases or ask for too many root fields,
 * with OPERATION_LIMIT. It runs once the operation is parsed and validated and before the
 * gateway plans or executes it, so a rejected operation costs no subgraph a single request; and
 * before the rate limits (useOperationGuards), so it costs the caller no token either.
 * (Size and token limits are checked earlier, on the raw request: requestLimits.ts.)
 */
export function operationLimitsGuard<TContext extends BaseContext>(
  limits: OperationLimits,
): OperationGuard<TContext> {
  return async ({ document, operation }) => {
    // No such operation: execution reports it, and nothing is sent anywhere.
    if (!operation) return;
    const exceeded = operationLimitError(document, operation, limits);
    if (exceeded) throw exceeded;
  };
}

/**
 * The OPERATION_LIMIT error for an operation over one of `limits`, if any: shared by HTTP (the
 * plugin above) and subscriptions (gateway/src/subscriptions), which Apollo Server never sees.
 */
export function operationLimitError(
  document: DocumentNode,
  operation: OperationDefinitionNode,
  limits: OperationLimits,
): GraphQLError | undefined {
  const measures = measureOperation(document, operation);
  for (const { measure, limit, message } of checks) {
    const actual = measures[measure];
    const max = limits[limit];
    if (actual > max) {
      return appError(ErrorCode.OPERATION_LIMIT, message(actual, max), { limit: measure, max, actual });
    }
  }
  return undefined;
}
