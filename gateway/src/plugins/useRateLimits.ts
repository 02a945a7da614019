import { HeaderMap } from '@apollo/server';
import { GraphQLError, OperationTypeNode } from 'graphql';
import { ErrorCode } from '../../../lib/errors.ts';
import type { Viewer } from '../../../lib/auth/tokens.ts';
import type { Logger } from '../../../lib/logger.ts';
import type { GatewayContext } from '../auth/createGatewayContext.ts';
import { ipBucketKey } from '../rateLimits/ipBucketKey.ts';
import type { BucketShape, TokenBuckets } from '../rateLimits/tokenBuckets.ts';
import { rootFieldNames } from './rootFieldNames.ts';
import type { OperationGuard } from './useOperationGuards.ts';

/** Mutations that guess or create credentials: a stricter bucket, against brute force. */
const AUTH_FIELDS = new Set(['logIn', 'signUp']);

export interface RateLimits {
  buckets: TokenBuckets;
  /** Every operation: one token from the signed-in user's bucket, else the client IP's. */
  operations: BucketShape;
  /** Each logIn / signUp field of a mutation (aliases included): one token from the IP's bucket. */
  auth: BucketShape;
  logger: Logger;
}

/**
 * Rate limits per operation, not per HTTP request: each operation of a batch is counted (Apollo
 * Server resolves each one apart), and a mutation with 100 aliased logIn fields costs 100 auth
 * tokens at once, so it is refused whole unless the bucket holds them all. It runs after the
 * operation limits (useOperationGuards keeps that order; as a plugin of its own it would run at
 * the same time) and before planning: a refused operation reaches no subgraph.
 */
export function rateLimitsGuard({
  buckets,
  operations,
  auth,
  logger,
}: RateLimits): OperationGuard<GatewayContext> {
  const take = createBucketTaker(buckets, logger);
  const takeOperationToken = operationTokenTaker(take, operations);
  return async ({ contextValue, document, operation }) => {
    if (!operation) return;
    const ip = contextValue.clientIp;
    await takeOperationToken(contextValue);
    if (operation.operation !== OperationTypeNode.MUTATION) return;
    const attempts = rootFieldNames(document, operation).filter((name) => AUTH_FIELDS.has(name)).length;
    if (attempts > 0) {
      await take(`auth:ip:${ipBucketKey(ip)}`, attempts, auth, 'sign-in and sign-up attempts');
    }
  };
}

/**
 * What every operation costs: one token from the caller's bucket (mutations that sign in cost more
 * on top). Also taken for a query answered from an identical one in flight
 * (execution/joinInflightRequests.ts), which never reaches the guard, and for each new
 * subscription; `what` names them in the refusal ("Too many subscriptions").
 */
export function operationTokenTaker(
  take: ReturnType<typeof createBucketTaker>,
  operations: BucketShape,
  what: 'requests' | 'subscriptions' = 'requests',
): (context: Pick<GatewayContext, 'viewer' | 'clientIp'>) => Promise<void> {
  return (context) => take(operationBucketKey(context.viewer, context.clientIp), 1, operations, what);
}

/** The bucket every operation of a caller draws from: the signed-in user's, else the IP's (an IPv6 /64). */
export function operationBucketKey(viewer: Viewer | null, ip: string): string {
  return viewer ? `ops:user:${viewer.id}` : `ops:ip:${ipBucketKey(ip)}`;
}

/**
 * Takes `cost` tokens or throws RATE_LIMITED: with a retry-after hint (extensions and header) when
 * waiting helps, without one when `cost` is more than the bucket ever holds (no wait would do).
 */
export function createBucketTaker(buckets: TokenBuckets, logger: Logger) {
  return async function take(key: string, cost: number, shape: BucketShape, what: string): Promise<void> {
    if (cost > shape.capacity) {
      logger.info({ key, cost, capacity: shape.capacity }, 'rate limited: more than a full bucket');
      throw new GraphQLError(
        `This operation makes ${cost} ${what} at once; at most ${shape.capacity} are allowed, so it is refused however long you wait. Send fewer.`,
        {
          extensions: {
            code: ErrorCode.RATE_LIMITED,
            cost,
            capacity: shape.capacity,
            http: { status: 429 },
          },
        },
      );
    }
    const result = await buckets.take(key, cost, shape);
    if (result.allowed) return;
    const retryAfterSeconds = Math.max(1, Math.ceil(result.retryAfterMs / 1_000));
    logger.info({ key, cost }, 'rate limited');
    throw new GraphQLError(`Too many ${what}: try again in ${retryAfterSeconds} s.`, {
      extensions: {
        code: ErrorCode.RATE_LIMITED,
        retryAfterSeconds,
        http: { status: 429, headers: new HeaderMap([['retry-after', String(retryAfterSeconds)]]) },
      },
    });
  };
}
