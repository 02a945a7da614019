import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { createServiceCredentials, SERVICE_CREDENTIAL_HEADER, type Viewer } from '../../lib/auth/tokens.ts';
import type { TestSystem } from './startTestSystem.ts';

/** A credential as the gateway signs it: for a user, or (null) for the gateway itself. */
export function signCredential(system: TestSystem, viewer: Viewer | null): Promise<string> {
  return createServiceCredentials({
    secret: system.secrets.serviceSecret,
    ttlSeconds: 60,
    service: 'gateway',
  }).sign(viewer);
}

export interface Subscription<T> {
  /** Every `next` payload's data, in order of arrival. */
  values: T[];
  /** GraphQL errors (from `next` or `error` messages), and a socket close as `{ closeCode }`. */
  errors: { message?: string; extensions?: Record<string, unknown>; closeCode?: number }[];
  /** Resolves when the server completes or fails the subscription. */
  ended: Promise<void>;
  unsubscribe(): void;
}

/**
 * A graphql-ws connection straight to a subgraph, authenticated as the gateway authenticates
 * (connection credential in connection_init). `connectionCredential: undefined` sends none.
 */
export function connectToSubgraph(url: string, connectionCredential: string | undefined): Client {
  return createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: connectionCredential ? { [SERVICE_CREDENTIAL_HEADER]: connectionCredential } : {},
    retryAttempts: 0,
    lazy: true,
  });
}

/** Subscribes on `client`, for the user of `userCredential` (per-operation extension) if given. */
export function subscribe<T>(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
  userCredential?: string,
): Subscription<T> {
  const values: T[] = [];
  const errors: Subscription<T>['errors'] = [];
  let unsubscribe = () => {};
  const ended = new Promise<void>((resolve) => {
    unsubscribe = client.subscribe<T>(
      {
        query,
        variables,
        ...(userCredential ? { extensions: { [SERVICE_CREDENTIAL_HEADER]: userCredential } } : {}),
      },
      {
        next: (result) => {
          if (result.errors) errors.push(...(result.errors as Subscription<T>['errors']));
          if (result.data) values.push(result.data);
        },
        error: (error) => {
          if (Array.isArray(error)) errors.push(...(error as Subscription<T>['errors']));
          else errors.push({ closeCode: (error as { code?: number }).code });
          resolve();
        },
        complete: resolve,
      },
    );
  });
  return { values, errors, ended, unsubscribe: () => unsubscribe() };
}
