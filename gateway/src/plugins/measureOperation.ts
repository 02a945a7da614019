import {
  Kind,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

export interface OperationMeasures {
  /** Nesting of fields: `{ me { id } }` is 2. Fragments add no level of their own. */
  depth: number;
  /** Aliased fields, counted once per place they are executed (a fragment spread twice counts twice). */
  aliases: number;
  /** Fields of the root selection, fragments flattened, aliases included. */
  rootFields: number;
}

interface Measure {
  depth: number;
  aliases: number;
  fields: number;
}

/**
 * Measures an operation with its fragments expanded. Each fragment is measured once and
 * memoized, so a "fragment bomb" (fragments spreading each other many times over) costs linear
 * time here, while its counts grow as they would at execution. Runs on validated documents
 * (no unknown or cyclic fragments).
 */
export function measureOperation(
  document: DocumentNode,
  operation: OperationDefinitionNode,
): OperationMeasures {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const measured = new Map<string, Measure>();
  const inProgress = new Set<string>();

  function fragment(name: string): Measure {
    const known = measured.get(name);
    if (known) return known;
    const definition = fragments.get(name);
    // Unknown or cyclic spreads fail validation first; measure them as empty if ever reached.
    if (!definition || inProgress.has(name)) return { depth: 0, aliases: 0, fields: 0 };
    inProgress.add(name);
    const result = selections(definition.selectionSet);
    inProgress.delete(name);
    measured.set(name, result);
    return result;
  }

  function selections(selectionSet: SelectionSetNode): Measure {
    let depth = 0;
    let aliases = 0;
    let fields = 0;
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) {
        const inner = selection.selectionSet
          ? selections(selection.selectionSet)
          : { depth: 0, aliases: 0, fields: 0 };
        depth = Math.max(depth, 1 + inner.depth);
        aliases += inner.aliases + (selection.alias ? 1 : 0);
        fields += 1;
      } else {
        const inner =
          selection.kind === Kind.FRAGMENT_SPREAD
            ? fragment(selection.name.value)
            : selections(selection.selectionSet);
        depth = Math.max(depth, inner.depth);
        aliases += inner.aliases;
        fields += inner.fields;
      }
    }
    return { depth, aliases, fields };
  }

  const root = selections(operation.selectionSet);
  return { depth: root.depth, aliases: root.aliases, rootFields: root.fields };
}
