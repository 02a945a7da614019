import type { GraphQLFormattedError } from 'graphql';
import { createClient, type Client } from 'graphql-ws';

export type ConnectionStatus = 'connecting' | 'live' | 'reconnecting' | 'offline';

export interface LiveConnection {
  /**
   * Keeps `query` subscribed until the connection is disposed: graphql-ws re-subscribes after a
   * reconnect, and a subscription the server ends (complete or error) is started again.
   */
  subscribe<T>(query: string, onData: (data: T) => void): void;
  dispose(): void;
}

export interface LiveConnectionOptions {
  token: string;
  onStatus(status: ConnectionStatus): void;
  /** Each time the socket is (re)acknowledged: events sent while it was down are gone. */
  onConnected(): void;
  /** The server refused the token (expired, or no longer an admin): retrying cannot help. */
  onRejected(reason: string): void;
  onSubscriptionError(message: string): void;
}

// graphql-ws close codes: 4401 Unauthorized, 4403 Forbidden (connection_init refused).
const REJECTED_CODES = new Set([4401, 4403]);
const REJECTED_ERROR_CODES = new Set(['UNAUTHENTICATED', 'FORBIDDEN']);
const MAX_RETRY_DELAY_MS = 5_000;
const RESUBSCRIBE_DELAY_MS = 1_000;

/** The graphql-ws connection to the gateway's /graphql (same URL as HTTP, ws: or wss:). */
export function createLiveConnection(options: LiveConnectionOptions): LiveConnection {
  const url = new URL('/graphql', window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  let disposed = false;
  const timers = new Set<number>();
  const unsubscribes = new Set<() => void>();

  const client: Client = createClient({
    url: url.href,
    connectionParams: () => ({ authorization: `Bearer ${options.token}` }),
    lazy: false,
    // A dashboard stays open for hours: it retries forever (a gateway restart, a deploy, a
    // laptop waking up) with a capped, jittered backoff so restarted gateways are not stampeded.
    retryAttempts: Infinity,
    shouldRetry: () => true,
    retryWait: (retries) =>
      new Promise((resolve) =>
        setTimeout(resolve, Math.min(MAX_RETRY_DELAY_MS, 250 * 2 ** retries) + Math.random() * 500),
      ),
    keepAlive: 10_000,
    onNonLazyError: () => {},
    on: {
      connecting: (isRetry) => status(isRetry ? 'reconnecting' : 'connecting'),
      connected: () => {
        status('live');
        options.onConnected();
      },
      closed: (event) => {
        const code = (event as { code?: number } | undefined)?.code;
        if (!disposed && code !== undefined && REJECTED_CODES.has(code)) {
          const reason = (event as { reason?: string }).reason;
          options.onRejected(reason || 'The gateway refused this session.');
          return;
        }
        status(disposed ? 'offline' : 'reconnecting');
      },
    },
  });

  function status(next: ConnectionStatus) {
    if (disposed && next !== 'offline') return;
    options.onStatus(navigator.onLine || next === 'offline' ? next : 'offline');
  }

  function subscribe<T>(query: string, onData: (data: T) => void) {
    if (disposed) return;
    const unsubscribe = client.subscribe<T>(
      { query },
      {
        next: (result) => {
          if (result.errors?.length)
            options.onSubscriptionError(result.errors.map((e) => e.message).join('; '));
          if (result.data) onData(result.data);
        },
        error: (error) => {
          unsubscribes.delete(unsubscribe);
          const errors = Array.isArray(error) ? (error as GraphQLFormattedError[]) : [];
          const message = errors.map((e) => e.message).join('; ');
          // Refused for who we are (token expired, role gone): asking again every second cannot help.
          if (errors.some((e) => REJECTED_ERROR_CODES.has(String(e.extensions?.['code'])))) {
            options.onRejected(message);
            return;
          }
          if (message) options.onSubscriptionError(message);
          later(() => subscribe(query, onData));
        },
        complete: () => {
          unsubscribes.delete(unsubscribe);
          later(() => subscribe(query, onData));
        },
      },
    );
    unsubscribes.add(unsubscribe);
  }

  function later(fn: () => void) {
    if (disposed) return;
    const timer = window.setTimeout(() => {
      timers.delete(timer);
      fn();
    }, RESUBSCRIBE_DELAY_MS);
    timers.add(timer);
  }

  const onOffline = () => status('offline');
  window.addEventListener('offline', onOffline);

  return {
    subscribe,
    dispose() {
      if (disposed) return;
      disposed = true;
      window.removeEventListener('offline', onOffline);
      for (const timer of timers) window.clearTimeout(timer);
      for (const unsubscribe of unsubscribes) unsubscribe();
      void client.dispose();
      options.onStatus('offline');
    },
  };
}
