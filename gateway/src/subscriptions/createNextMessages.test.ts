import { GraphQLError, parse, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { makeServer, MessageType } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import { createNextMessages, formattedResult } from './createNextMessages.ts';
import type { SharedResult } from './createSubscriberQueue.ts';

/** An error formatter as the gateway's: codes kept, an unexpected error's message hidden. */
const formatErrors = (errors: readonly GraphQLError[]): GraphQLFormattedError[] =>
  errors.map((error) =>
    error.extensions['code']
      ? error.toJSON()
      : { message: 'Internal server error', extensions: { code: 'X' } },
  );

/** What graphql-ws itself sends for `result` on subscription `id`, with the gateway's onNext hook. */
async function sentByGraphqlWs(id: string, result: ExecutionResult): Promise<string> {
  const server = makeServer({
    onNext: (_ctx, _id, _payload, _args, next) =>
      next.errors ? formattedResult(next, formatErrors) : undefined,
    subscribe: async function* () {
      yield result;
    },
    // The schema is not used: `subscribe` above answers.
    onSubscribe: () => ({ schema: undefined as never, document: parse('subscription { t }') }),
  });
  const sent: string[] = [];
  let onMessage: (data: string) => Promise<void> = async () => {};
  server.opened(
    {
      protocol: 'graphql-transport-ws',
      send: (data) => void sent.push(data),
      close: () => {},
      onMessage: (cb) => (onMessage = cb),
    },
    {},
  );
  await onMessage(JSON.stringify({ type: MessageType.ConnectionInit }));
  return await new Promise((resolve) => {
    void onMessage(
      JSON.stringify({ id, type: MessageType.Subscribe, payload: { query: 'subscription { t }' } }),
    ).then(() => resolve(sent.find((message) => message.includes('"next"')) ?? ''));
  });
}

const shared = (result: ExecutionResult): SharedResult => {
  const json = JSON.stringify(formattedResult(result, formatErrors));
  return { result, json, bytes: Buffer.byteLength(json) };
};

describe('next messages made from a result serialised once', () => {
  const results: [string, ExecutionResult][] = [
    ['data', { data: { salesMetricsUpdated: { totalOrders: 3, topProducts: [{ name: 'Größe “Ⅱ” 🚀' }] } } }],
    ['data and extensions', { data: { t: null }, extensions: { cost: 1 } }],
    [
      'errors with codes and without',
      {
        errors: [
          new GraphQLError('gone', { path: ['t'], extensions: { code: 'SERVICE_UNAVAILABLE' } }),
          new GraphQLError('stack trace and SQL'),
        ],
        data: { t: null },
      },
    ],
  ];

  it.each(results)('are byte for byte what graphql-ws sends: %s', async (_name, result) => {
    for (const id of ['1', 'a"b\\c', 'ünï-😀']) {
      const message = createNextMessages()(id)(shared(result));
      expect(message.toString('utf8')).toBe(await sentByGraphqlWs(id, result));
    }
  });

  it('serialise the event once for all subscriptions', () => {
    const nextMessages = createNextMessages();
    const event = shared({ data: { n: 1 } });
    const first = nextMessages('1')(event);
    const second = nextMessages('2')(event);
    expect(JSON.parse(first.toString())).toEqual({ id: '1', type: 'next', payload: { data: { n: 1 } } });
    expect(JSON.parse(second.toString())).toEqual({ id: '2', type: 'next', payload: { data: { n: 1 } } });
  });
});
