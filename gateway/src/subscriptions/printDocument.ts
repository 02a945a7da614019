import { print, type DocumentNode } from 'graphql';

const printed = new WeakMap<DocumentNode, string>();

/**
 * `print(document)`, once per document object. The bridge hands identical subscriptions the
 * same cached document (createSubscriptionBridge.ts), and both its sharing key and the planner's
 * plan cache key on the printed text: at thousands of subscribers, printing it per subscribe
 * was avoidable work (issue #7). Weak keys: a document evicted from the cache takes its text along.
 */
export function printDocument(document: DocumentNode): string {
  let text = printed.get(document);
  if (text === undefined) printed.set(document, (text = print(document)));
  return text;
}
