import { errors, jwtVerify, SignJWT } from 'jose';
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

function toInvalidToken(error: unknown): InvalidTokenError {
  if (error instanceof errors.JWTExpired) return new InvalidTokenError('token expired', true);
  if (error instanceof InvalidTokenError) return error;
  return new InvalidTokenError('invalid token');
}

/** Users' bearer tokens: issued by the users service, verified by the gateway. */
export function createUserTokens({ secret, ttlSeconds }: { secret: string; ttlSeconds: number }) {
  const key = new TextEncoder().encode(secret);
  return {
    async issue(viewer: Viewer): Promise<string> {
      return new SignJWT({ role: viewer.role })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(viewer.id)
        .setIssuer(ISSUER)
        .setAudience(USER_TOKEN_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .sign(key);
    },
    async verify(token: string): Promise<Viewer & { expiresAt: number }> {
      try {
        const { payload } = await jwtVerify(token, key, {
          issuer: ISSUER,
          audience: USER_TOKEN_AUDIENCE,
          algorithms: ['HS256'],
        });
        const claims = viewerClaims.safeParse(payload);
        if (!claims.success) throw new InvalidTokenError('invalid token claims');
        return { id: claims.data.sub, role: claims.data.role, expiresAt: (payload.exp ?? 0) * 1000 };
      } catch (error) {
        throw toInvalidToken(error);
      }
    },
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
}: {
  secret: string;
  ttlSeconds: number;
  service: string;
}) {
  const key = new TextEncoder().encode(secret);
  return {
    async sign(viewer: Viewer | null): Promise<string> {
      const jwt = new SignJWT(viewer ? { role: viewer.role } : {})
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(service)
        .setAudience(SERVICE_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`);
      if (viewer) jwt.setSubject(viewer.id);
      return jwt.sign(key);
    },
    async verify(credential: string): Promise<ServiceCaller> {
      try {
        const { payload } = await jwtVerify(credential, key, {
          audience: SERVICE_AUDIENCE,
          algorithms: ['HS256'],
        });
        if (!payload.iss) throw new InvalidTokenError('credential names no caller');
        if (payload.sub === undefined) return { service: payload.iss, viewer: null };
        const claims = viewerClaims.safeParse(payload);
        if (!claims.success) throw new InvalidTokenError('invalid credential claims');
        return { service: payload.iss, viewer: { id: claims.data.sub, role: claims.data.role } };
      } catch (error) {
        throw toInvalidToken(error);
      }
    },
  };
}
export type ServiceCredentials = ReturnType<typeof createServiceCredentials>;
