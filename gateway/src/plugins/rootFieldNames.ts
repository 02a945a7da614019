import { Kind, type DocumentNode, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';

/**
 * The root fields an operation executes, by schema name (not alias), one entry per execution:
 * `{ a: logIn(...) b: logIn(...) }` is ["logIn", "logIn"]. Fragments and inline fragments are
 * flattened; a fragment is expanded once per spread (validation has rejected cycles).
 */
export function rootFieldNames(document: DocumentNode, operation: OperationDefinitionNode): string[] {
  const fragments = new Map<string, SelectionSetNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) {
      fragments.set(definition.name.value, definition.selectionSet);
    }
  }
  const names: string[] = [];
  const visit = (selectionSet: SelectionSetNode, seen: Set<string>) => {
    for (const selection of selectionSet.selections) {
      if (selection.kind === Kind.FIELD) names.push(selection.name.value);
      else if (selection.kind === Kind.INLINE_FRAGMENT) visit(selection.selectionSet, seen);
      else {
        const fragment = fragments.get(selection.name.value);
        if (fragment && !seen.has(selection.name.value)) {
          visit(fragment, new Set(seen).add(selection.name.value));
        }
      }
    }
  };
  visit(operation.selectionSet, new Set());
  return names;
}
