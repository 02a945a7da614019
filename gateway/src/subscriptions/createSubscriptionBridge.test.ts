import { buildSchema, type GraphQLSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../../lib/logger.ts';
import type { SharedSubscriptions } from './createSharedSubscriptions.ts';
import { createSubscriptionBridge } from './createSubscriptionBridge.ts';
import type { SubscriptionPlanner } from './createSubscriptionPlanner.ts';

const withColor = buildSchema(`
  type Query { ok: Boolean }
  type Widget { name: String color: String }
  type Subscription { widgets: Widget }
`);
const withoutColor = buildSchema(`
  type Query { ok: Boolean }
  type Widget { name: String }
  type Subscription { widgets: Widget }
`);

function bridgeOver(schema: () => GraphQLSchema) {
  return createSubscriptionBridge({
    planner: { schema } as unknown as SubscriptionPlanner,
    shared: {} as SharedSubscriptions,
    maxBufferedBytes: 1_000,
    limits: { maxDepth: 10, maxAliases: 10, maxRootFields: 10, maxTokens: 1_000 },
    hideSchemaDetails: false,
    logger: createLogger({ level: 'silent', service: 'test' }),
  });
}

describe('preparing subscriptions', () => {
  it('identical texts share one parsed document', () => {
    const bridge = bridgeOver(() => withColor);
    const first = bridge.prepare({ query: 'subscription { widgets { name } }' });
    const second = bridge.prepare({ query: 'subscription { widgets { name } }' });
    expect(Array.isArray(first) || Array.isArray(second)).toBe(false);
    if (Array.isArray(first) || Array.isArray(second)) return;
    expect(second.document).toBe(first.document);
  });

  it('a text valid before a supergraph reload is validated again against the new schema', () => {
    let schema = withColor;
    const bridge = bridgeOver(() => schema);
    const query = 'subscription { widgets { color } }';
    expect(Array.isArray(bridge.prepare({ query }))).toBe(false);
    schema = withoutColor;
    const refused = bridge.prepare({ query });
    expect(Array.isArray(refused) && refused[0]?.extensions['code']).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  it('a shared document still answers each client by its own operation name and variables', () => {
    const bridge = bridgeOver(() => withColor);
    const query = 'subscription A { widgets { name } } subscription B { widgets { color } }';
    const a = bridge.prepare({ query, operationName: 'A' });
    const c = bridge.prepare({ query, operationName: 'C' });
    expect(!Array.isArray(a) && a.operationName).toBe('A');
    expect(Array.isArray(c) && c[0]?.extensions['code']).toBe('OPERATION_RESOLUTION_FAILURE');
  });
});
