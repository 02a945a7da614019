import { describe, expect, it } from 'vitest';
import { dedupeEntityRepresentations } from './dedupeEntityRepresentations.ts';

const product = (id: string) => ({ __typename: 'Product', id });

describe('dedupeEntityRepresentations', () => {
  it('leaves a fetch without duplicates alone', () => {
    expect(dedupeEntityRepresentations(undefined)).toBeUndefined();
    expect(dedupeEntityRepresentations([product('a')])).toBeUndefined();
    expect(dedupeEntityRepresentations([product('a'), product('b')])).toBeUndefined();
  });

  it('sends each distinct representation once, in order of first appearance', () => {
    const deduped = dedupeEntityRepresentations([
      product('a'),
      product('b'),
      product('a'),
      product('c'),
      product('b'),
    ]);
    expect(deduped?.representations).toEqual([product('a'), product('b'), product('c')]);
  });

  it('puts the answers back at every original position', () => {
    const deduped = dedupeEntityRepresentations([product('a'), product('b'), product('a'), product('b')])!;
    const reply = deduped.expand({
      data: { _entities: [{ name: 'A' }, { name: 'B' }] },
      extensions: { kept: true },
    });
    expect(reply).toEqual({
      data: { _entities: [{ name: 'A' }, { name: 'B' }, { name: 'A' }, { name: 'B' }] },
      extensions: { kept: true },
    });
  });

  it('repeats an entity error at each position it stands for and keeps other errors as they are', () => {
    const deduped = dedupeEntityRepresentations([product('a'), product('b'), product('a')])!;
    const reply = deduped.expand({
      data: { _entities: [null, { name: 'B' }] },
      errors: [
        { message: 'a is gone', path: ['_entities', 0, 'name'], extensions: { code: 'NOT_FOUND' } },
        { message: 'something else' },
      ],
    });
    expect(reply.data).toEqual({ _entities: [null, { name: 'B' }, null] });
    expect(reply.errors).toEqual([
      { message: 'a is gone', path: ['_entities', 0, 'name'], extensions: { code: 'NOT_FOUND' } },
      { message: 'a is gone', path: ['_entities', 2, 'name'], extensions: { code: 'NOT_FOUND' } },
      { message: 'something else' },
    ]);
  });

  it('leaves a reply of the wrong length for the gateway to reject', () => {
    const deduped = dedupeEntityRepresentations([product('a'), product('a')])!;
    expect(deduped.expand({ data: { _entities: [{}, {}, {}] } }).data).toEqual({ _entities: [{}, {}, {}] });
    expect(deduped.expand({ data: null }).data).toBeNull();
  });
});
