import { errors, jwtVerify, SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import { z } from 'zod';

export const Role = { CUSTOMER: 'CUSTOMER', ADMIN: 'ADMIN' } as const;
export type Role = (typeof Role)[keyof typeof Role];

/** The signed-in user a request acts for. */
export interface Viewer {
  id: string;
  role: Role;
}

const USER_TOKEN_AUDIENCE = 'event-federation:client';
const SERVICE_AUDIENCE = 'event-federation:subgraph';
const ISSUER = 'event-federation';

const viewerClaims = z.object({ sub: z.string().min(1), role: z.enum(['CUSTOMER', 'ADMIN']) });

export class InvalidTokenError extends Error {
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
    this.name = 'InvalidTokenError';
  }
}

/**
 * Tokens already verified, by their exact text, until they expire. An HS256 check runs through
 * WebCrypto's thread pool and was ~10 % of the gateway's CPU under load, for the same few tokens
 * presented again and again. The same text carries the same signature and claims, so its answer
 * cannot change before `exp`; only successes are kept, and never past their expiry.
 */
function createVerifiedCache<T extends object>(
  verify: (token: string) => Promise<T & { expiresAt: number }>,
  now: () => number = Date.now,
) {
  const verified = new LRUCache<string, T & { expiresAt: number }>({
    max: VERIFIED_TOKENS_KEPT,
    perf: { now },
  });
  return async (token: string): Promise<T & { expiresAt: number }> => {
    const known = verified.get(token);
    if (known && known.expiresAt > now()) return known;
    const result = await verify(token);
    const ttl = result.expiresAt - now();
    if (ttl > 0) verified.set(token, result, { ttl });
    return result;
  };
}
/** Distinct live tokens remembered per verifier (~1 KB each). */
const VERIFIED_TOKENS_KEPT = 10_000;

function toInvalidToken(error: unknown): InvalidTokenError {
  if (error instanceof errors.JWTExpired) return new InvalidTokenError('token expired', true);
  if (error instanceof InvalidTokenError) return error;
  return new InvalidTokenError('invalid token');
}

/**
 * Users' bearer tokens: issued by the users service, verified by the gateway. `now` (milliseconds
 * since the epoch) is the time issuing and expiry go by: a test passes its own instead of sleeping
 * past a one-second expiry, which a loaded machine can overshoot before the token is first used.
 */
export function createUserTokens({
  secret,
  ttlSeconds,
  now = Date.now,
}: {
  secret: string;
  ttlSeconds: number;
  now?: () => number;
}) {
  const key = new TextEncoder().encode(secret);
  return {
    async issue(viewer: Viewer): Promise<string> {
      const issuedAt = Math.floor(now() / 1000);
      return new SignJWT({ role: viewer.role })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(viewer.id)
        .setIssuer(ISSUER)
        .setAudience(USER_TOKEN_AUDIENCE)
        .setIssuedAt(issuedAt)
        .setExpirationTime(issuedAt + ttlSeconds)
        .sign(key);
    },
    verify: createVerifiedCache<Viewer>(async (token) => {
      try {
        const { payload } = await jwtVerify(token, key, {
          issuer: ISSUER,
          audience: USER_TOKEN_AUDIENCE,
          algorithms: ['HS256'],
          currentDate: new Date(now()),
        });
        const claims = viewerClaims.safeParse(payload);
        if (!claims.success) throw new InvalidTokenError('invalid token claims');
        return { id: claims.data.sub, role: claims.data.role, expiresAt: (payload.exp ?? 0) * 1000 };
      } catch (error) {
        throw toInvalidToken(error);
      }
    }, now),
  };
}
export type UserTokens = ReturnType<typeof createUserTokens>;

/** Who is calling a subgraph: the gateway or a sibling service, possibly on behalf of a user. */
export interface ServiceCaller {
  service: string;
  viewer: Viewer | null;
}

export const SERVICE_CREDENTIAL_HEADER = 'x-service-credential';

/**
 * The short-lived credential that the gateway (or a sibling service) signs for each subgraph
 * request. Subgraphs take identity only from it, never from a client-supplied header, so a
 * direct call to a subgraph without it is UNAUTHENTICATED.
 */
export function createServiceCredentials({
  secret,
  ttlSeconds,
  service,
  now = Date.now,
}: {
  secret: string;
  ttlSeconds: number;
  service: string;
  /** The time (ms since the epoch) signing, expiry and renewal go by; a test passes its own. */
  now?: () => number;
}) {
  const key = new TextEncoder().encode(secret);
  // One credential per viewer, reused while more than half its lifetime is left: signing per
  // request cost WebCrypto work on the gateway, and a repeated credential lets subgraphs answer
  // from their verified cache.
  const signed = new LRUCache<string, Promise<string>>({
    max: VERIFIED_TOKENS_KEPT,
    ttl: (ttlSeconds * 1000) / 2,
    // Read the clock on every lookup (not lru-cache's 1 ms memo of it), so a test's jump counts.
    perf: { now },
    ttlResolution: 0,
  });
  const verify = createVerifiedCache<ServiceCaller>(async (credential) => {
    try {
      const { payload } = await jwtVerify(credential, key, {
        audience: SERVICE_AUDIENCE,
        algorithms: ['HS256'],
        currentDate: new Date(now()),
      });
      if (!payload.iss) throw new InvalidTokenError('credential names no caller');
      const expiresAt = (payload.exp ?? 0) * 1000;
      if (payload.sub === undefined) return { service: payload.iss, viewer: null, expiresAt };
      const claims = viewerClaims.safeParse(payload);
      if (!claims.success) throw new InvalidTokenError('invalid credential claims');
      return { service: payload.iss, viewer: { id: claims.data.sub, role: claims.data.role }, expiresAt };
    } catch (error) {
      throw toInvalidToken(error);
    }
  }, now);
  async function signNew(viewer: Viewer | null): Promise<string> {
    const issuedAt = Math.floor(now() / 1000);
    const jwt = new SignJWT(viewer ? { role: viewer.role } : {})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer(service)
      .setAudience(SERVICE_AUDIENCE)
      .setIssuedAt(issuedAt)
      .setExpirationTime(issuedAt + ttlSeconds);
    if (viewer) jwt.setSubject(viewer.id);
    return jwt.sign(key);
  }
  return {
    sign(viewer: Viewer | null): Promise<string> {
      const scope = viewer ? `${viewer.role}:${viewer.id}` : '';
      let credential = signed.get(scope);
      if (!credential) {
        credential = signNew(viewer);
        signed.set(scope, credential);
        credential.catch(() => signed.delete(scope));
      }
      return credential;
    },
    async verify(credential: string): Promise<ServiceCaller> {
      const { service: caller, viewer } = await verify(credential);
      return { service: caller, viewer };
    },
  };
}
export type ServiceCredentials = ReturnType<typeof createServiceCredentials>;
