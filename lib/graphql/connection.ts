import { badUserInput } from '../errors.ts';

/** API.md: `first` is capped at 100 on every connection. */
export const MAX_PAGE_SIZE = 100;

export interface Connection<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

/**
 * Opaque keyset cursors: base64url of `<kind>:<sequence>`. The kind stops a cursor of one
 * connection from being replayed on another.
 */
export function encodeCursor(kind: string, sequence: number): string {
  return Buffer.from(`${kind}:${sequence}`).toString('base64url');
}

export function decodeCursor(kind: string, cursor: string | null | undefined): number | null {
  if (cursor === null || cursor === undefined) return null;
  const [prefix, value, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  const sequence = Number(value);
  if (prefix !== kind || rest.length > 0 || !Number.isSafeInteger(sequence) || sequence < 0) {
    throw badUserInput(`"after" is not a cursor of this list: ${JSON.stringify(cursor)}`, {
      argumentName: 'after',
    });
  }
  return sequence;
}

/** Validates `first`: negative is an error, above the cap is clamped to it (as API.md says). */
export function pageSize(first: number | null | undefined, fallback = 20): number {
  const size = first ?? fallback;
  if (!Number.isInteger(size) || size < 0) {
    throw badUserInput('"first" must be zero or a positive integer', { argumentName: 'first' });
  }
  return Math.min(size, MAX_PAGE_SIZE);
}

/**
 * Builds a connection from rows fetched with `LIMIT size + 1`: the extra row only says there is
 * a next page.
 */
export function toConnection<T>(
  kind: string,
  rows: T[],
  size: number,
  sequenceOf: (row: T) => number,
): Connection<T> {
  const page = rows.slice(0, size);
  const edges = page.map((node) => ({ cursor: encodeCursor(kind, sequenceOf(node)), node }));
  return {
    edges,
    pageInfo: { hasNextPage: rows.length > size, endCursor: edges.at(-1)?.cursor ?? null },
  };
}
