import type { FormattedExecutionResult } from 'graphql';

/**
 * Apollo Server's `stringifyResult`, serialising a shared `data` tree once.
 *
 * Requests that shared one execution (dedupeInflightQueries) carry the very same `data` object;
 * serialising an 87 KB answer again for each of 50 such requests was, after deduplication, the
 * largest cost left per request. The text of each `data` object is kept in a WeakMap, so it lives
 * exactly as long as the object. The output is byte for byte Apollo's default
 * (`JSON.stringify(value) + '\n'`, fields in the order Apollo gives them).
 */
export function createResultStringifier(): (value: FormattedExecutionResult) => string {
  /** Per data tree: its text, and the whole response when that is all the result holds. */
  const texts = new WeakMap<object, { data: string; whole?: string }>();
  return (value) => {
    const { data } = value;
    if (data === null || typeof data !== 'object') return JSON.stringify(value) + '\n';
    let text = texts.get(data);
    if (!text) {
      text = { data: JSON.stringify(data) };
      texts.set(data, text);
    }
    const dataOnly = Object.entries(value).every(([key, field]) => key === 'data' || field === undefined);
    // One string instance for every response that is only this data: the HTTP layer then
    // encodes it to bytes once too (serveGraphQL).
    if (dataOnly) return (text.whole ??= `{"data":${text.data}}\n`);
    const parts: string[] = [];
    for (const [key, field] of Object.entries(value)) {
      if (field === undefined) continue;
      parts.push(`${JSON.stringify(key)}:${key === 'data' ? text.data : JSON.stringify(field)}`);
    }
    return `{${parts.join(',')}}\n`;
  };
}
