import type { GraphQLFormattedError } from 'graphql';

/** A subgraph's reply, as far as `_entities` deduplication cares. */
interface EntitiesReply {
  data?: Record<string, unknown> | null;
  errors?: readonly GraphQLFormattedError[];
}

export interface DedupedRepresentations {
  /** The distinct representations, in order of first appearance: what the subgraph is sent. */
  representations: unknown[];
  /** Puts the subgraph's reply back in the shape of the original, duplicated request. */
  expand<R extends EntitiesReply>(reply: R): R;
}

/**
 * @apollo/gateway sends one `_entities` representation per position in the result tree, so
 * `orders → items → product` asks products for the same product once per order line that
 * holds it (the heavy benchmark query: 100 representations for 10 products). The subgraph
 * then resolves, serialises and sends back every copy, and the gateway parses them all.
 * Apollo Router and Hive Gateway send each distinct representation once; this does the same
 * behind the data source and restores the duplicates in the reply, so the query planner's
 * executor sees exactly the reply it asked for.
 *
 * Identical representations within one fetch select the same fields of the same entity, so
 * their answers are identical: sharing one is not observable. An error at
 * `_entities.<distinct index>` is repeated at every original position it stands for, as the
 * subgraph would have reported it for each copy.
 *
 * Returns undefined when there is nothing to deduplicate (no representations, or all distinct),
 * so the common case costs one pass and no copies.
 */
export function dedupeEntityRepresentations(representations: unknown): DedupedRepresentations | undefined {
  if (!Array.isArray(representations) || representations.length < 2) return undefined;
  const indexByKey = new Map<string, number>();
  const distinct: unknown[] = [];
  // originalToDistinct[i]: the distinct index that answers original position i.
  const originalToDistinct = new Array<number>(representations.length);
  for (let i = 0; i < representations.length; i++) {
    // The gateway builds every representation of one fetch from the same `@requires`/`@key`
    // selection, so equal entities serialise with the same key order.
    const key = JSON.stringify(representations[i]);
    let index = indexByKey.get(key);
    if (index === undefined) {
      index = distinct.length;
      indexByKey.set(key, index);
      distinct.push(representations[i]);
    }
    originalToDistinct[i] = index;
  }
  if (distinct.length === representations.length) return undefined;

  return {
    representations: distinct,
    expand(reply) {
      const entities = reply.data?.['_entities'];
      // A reply of another length is malformed: leave it for the gateway to report as such.
      const data =
        Array.isArray(entities) && entities.length === distinct.length
          ? { ...reply.data, _entities: originalToDistinct.map((d) => entities[d] as unknown) }
          : reply.data;
      const errors = reply.errors?.flatMap((error) => expandErrorPath(error, originalToDistinct));
      return { ...reply, data, ...(errors ? { errors } : {}) };
    },
  };
}

function expandErrorPath(
  error: GraphQLFormattedError,
  originalToDistinct: number[],
): GraphQLFormattedError[] {
  const path = error.path;
  if (!path || path[0] !== '_entities' || typeof path[1] !== 'number') return [error];
  const distinctIndex = path[1];
  const copies: GraphQLFormattedError[] = [];
  for (let i = 0; i < originalToDistinct.length; i++) {
    if (originalToDistinct[i] === distinctIndex)
      copies.push({ ...error, path: ['_entities', i, ...path.slice(2)] });
  }
  return copies.length > 0 ? copies : [error];
}
