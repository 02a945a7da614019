import { GraphQLError, parse, type ExecutionResult, type GraphQLFormattedError } from 'graphql';
import { makeServer, MessageType } from 'graphql-ws';
import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
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

/** ws's frame parser, as its client uses it (exported by ws, not typed by @types/ws). */
const { Receiver } = ws as unknown as {
  Receiver: new (options: { isServer: boolean }) => NodeJS.WritableStream & {
    on(event: 'message', listener: (data: Buffer, binary: boolean) => void): void;
    on(event: 'error', listener: (error: Error) => void): void;
  };
};

/** What a client reads from a frame: its text, and whether it came as binary. */
function read([first, tail]: [Buffer, Buffer]): Promise<{ text: string; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false });
    receiver.on('message', (data: Buffer, binary: boolean) =>
      resolve({ text: data.toString('utf8'), binary }),
    );
    receiver.on('error', reject);
    receiver.write(Buffer.concat([first, tail]));
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
      const frame = createNextMessages()(id).frame(shared(result));
      expect(await read(frame)).toEqual({ text: await sentByGraphqlWs(id, result), binary: false });
    }
  });

  it.each([
    ['7-bit length', 40],
    ['the largest 7-bit length', 125 - '{"id":"1","type":"next","payload":{"data":{"s":""}}}'.length],
    ['16-bit length', 1_000],
    ['the largest 16-bit length', 65_535 - '{"id":"1","type":"next","payload":{"data":{"s":""}}}'.length],
    ['64-bit length', 70_000],
  ])('frame the message as one WebSocket text frame a client reads whole: %s', async (_name, size) => {
    const result: ExecutionResult = { data: { s: 'x'.repeat(size) } };
    const frame = createNextMessages()('1').frame(shared(result));
    expect(await read(frame)).toEqual({ text: await sentByGraphqlWs('1', result), binary: false });
  });

  it('serialise the event once for all subscriptions', async () => {
    const nextMessages = createNextMessages();
    const event = shared({ data: { n: 1 } });
    const first = nextMessages('1').frame(event);
    const second = nextMessages('2').frame(event);
    expect(JSON.parse((await read(first)).text)).toEqual({
      id: '1',
      type: 'next',
      payload: { data: { n: 1 } },
    });
    expect(JSON.parse((await read(second)).text)).toEqual({
      id: '2',
      type: 'next',
      payload: { data: { n: 1 } },
    });
    // The event's bytes are one Buffer shared by both.
    expect(first[1]).toBe(second[1]);
  });
});
