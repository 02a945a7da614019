/** One GraphQL operation over HTTP; throws unless it answers data without errors. */
export async function postGraphQL<T>(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) {
    throw new Error(
      `${url} answered ${response.status}: ${JSON.stringify(body.errors ?? body).slice(0, 1_000)}`,
    );
  }
  return body.data;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
