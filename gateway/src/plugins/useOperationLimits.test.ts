import { Kind, parse, type OperationDefinitionNode } from 'graphql';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../../lib/config.ts';
import * as dashboard from '../../dashboard/src/operations.ts';
import { operationLimitError } from './useOperationLimits.ts';

/** Every GraphQL document the dashboard module exports, by export name. */
const dashboardOperations: [string, string][] = Object.entries(dashboard).flatMap(([name, value]) =>
  typeof value === 'string' && /^\s*(query|mutation|subscription)\b/.test(value) ? [[name, value]] : [],
);

describe('the default operation limits', () => {
  const config = loadConfig({});
  const limits = {
    maxDepth: config.OPERATION_MAX_DEPTH,
    maxAliases: config.OPERATION_MAX_ALIASES,
    maxRootFields: config.OPERATION_MAX_ROOT_FIELDS,
  };

  it('let every operation the dashboard sends through', () => {
    expect(dashboardOperations.map(([name]) => name)).toEqual(
      expect.arrayContaining(['LOG_IN', 'ORDER_STATUS_CHANGED', 'SALES_METRICS', 'SALES_METRICS_UPDATED']),
    );
    for (const [name, text] of dashboardOperations) {
      // parse throws past maxTokens, counting as the gateway's token limit counts.
      const document = parse(text, { maxTokens: config.OPERATION_MAX_TOKENS });
      const operations = document.definitions.filter(
        (d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION,
      );
      expect(operations, name).toHaveLength(1);
      expect(operationLimitError(document, operations[0]!, limits)?.message, name).toBeUndefined();
    }
  });
});
