import { describe, expect, it } from 'vitest';
import { createResultStringifier } from './createResultStringifier.ts';

/** What Apollo Server sends by default: fields ordered errors, data, extensions. */
const apolloDefault = (value: object) => JSON.stringify(value) + '\n';

describe('the result stringifier', () => {
  const stringify = createResultStringifier();

  it('writes exactly what Apollo Server writes by default', () => {
    const results = [
      { errors: undefined, data: { a: [1, { b: 'c"\u2028' }], n: null }, extensions: undefined },
      { errors: [{ message: 'boom', path: ['a'] }], data: { a: null }, extensions: { code: 'X' } },
      { errors: [{ message: 'no data' }], data: undefined, extensions: undefined },
      { errors: undefined, data: null, extensions: undefined },
    ];
    for (const result of results) expect(stringify(result)).toBe(apolloDefault(result));
  });

  it('reuses the text of a data tree shared by several results, with each result its own errors', () => {
    const data = { products: [{ id: 'p1', name: 'Widget' }] };
    const first = stringify({ errors: undefined, data, extensions: undefined });
    // A follower of the same execution: the same data object, other extensions.
    const second = stringify({ errors: undefined, data, extensions: { requestId: 'r2' } });
    expect(first).toBe(apolloDefault({ data }));
    expect(second).toBe(apolloDefault({ data, extensions: { requestId: 'r2' } }));
  });
});

describe('responses that are only a shared data tree', () => {
  it('are one and the same string, so the bytes can be encoded once', () => {
    const stringify = createResultStringifier();
    const data = { products: [{ id: 'p1' }] };
    const first = stringify({ errors: undefined, data, extensions: undefined });
    const second = stringify({ errors: undefined, data, extensions: undefined });
    expect(second).toBe(first);
    expect(first).toBe(apolloDefault({ data }));
  });
});
