import type { IncomingHttpHeaders } from 'node:http';
import {
  InvalidTokenError,
  type ServiceCredentials,
  type UserTokens,
  type Viewer,
} from '../../../lib/auth/tokens.ts';
import { unauthenticated } from '../../../lib/errors.ts';

export interface GatewayContext {
  viewer: Viewer | null;
  /** The client's address (rate limits key anonymous callers and logIn attempts on it). */
  clientIp: string;
  /** The credential for subgraph calls (one per viewer, reused by `credentials.sign`). */
  serviceCredential: () => Promise<string>;
}

/**
 * Verifies the client's bearer token (if any) and prepares the credential the gateway signs for
 * subgraphs. A token that is present but bad or expired is an error, not an anonymous request:
 * the client needs to know to log in again.
 */
export function createGatewayContextFactory({
  userTokens,
  credentials,
}: {
  userTokens: UserTokens;
  credentials: ServiceCredentials;
}) {
  return async (headers: IncomingHttpHeaders, clientIp = 'unknown'): Promise<GatewayContext> => {
    const viewer = await viewerFrom(headers.authorization);
    return { viewer, clientIp, serviceCredential: () => credentials.sign(viewer) };
  };

  async function viewerFrom(authorization: string | undefined): Promise<Viewer | null> {
    if (authorization === undefined || authorization.trim() === '') return null;
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!match?.[1]) throw unauthenticated('Authorization must be "Bearer <token>".');
    try {
      const { id, role } = await userTokens.verify(match[1]);
      return { id, role };
    } catch (error) {
      if (error instanceof InvalidTokenError) {
        throw unauthenticated(error.expired ? 'Your token has expired: log in again.' : 'Invalid token.');
      }
      throw error;
    }
  }
}
