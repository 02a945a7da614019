import { GraphQLError } from 'graphql';

/**
 * The stable error codes of the public API (API.md, "Errors"). Clients switch on these,
 * so a code is never renamed; new ones may be added.
 */
export const ErrorCode = {
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  IDEMPOTENCY_CONFLICT: 'IDEMPOTENCY_CONFLICT',
  RATE_LIMITED: 'RATE_LIMITED',
  OPERATION_LIMIT: 'OPERATION_LIMIT',
  SERVICE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
  /**
   * Between services only (products → the orders saga): a commit or release that the
   * reservation's state forbids. Permanent: the saga fails the order instead of retrying.
   */
  RESERVATION_NOT_HELD: 'RESERVATION_NOT_HELD',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

const httpStatusByCode: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.UNAUTHENTICATED]: 401,
  // Raised before execution, where the status is the whole response's.
  [ErrorCode.OPERATION_LIMIT]: 400,
  [ErrorCode.RATE_LIMITED]: 429,
};

/** A GraphQL error carrying one of the stable codes (and, where it matters, an HTTP status). */
export function appError(
  code: ErrorCode,
  message: string,
  extra: Record<string, unknown> = {},
): GraphQLError {
  const status = httpStatusByCode[code];
  return new GraphQLError(message, {
    extensions: { code, ...extra, ...(status ? { http: { status } } : {}) },
  });
}

export const badUserInput = (message: string, extra?: Record<string, unknown>) =>
  appError(ErrorCode.BAD_USER_INPUT, message, extra);
export const forbidden = (message = 'You are not allowed to do this.') =>
  appError(ErrorCode.FORBIDDEN, message);
export const unauthenticated = (message = 'Sign in first: this needs a valid bearer token.') =>
  appError(ErrorCode.UNAUTHENTICATED, message);

export function errorCodeOf(error: unknown): string | undefined {
  if (error instanceof GraphQLError) {
    const code = error.extensions['code'];
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}

/**
 * The codes a response's errors carry, one per error, as metrics and logs count them: an error
 * without one is an INTERNAL_SERVER_ERROR.
 */
export function errorCodesOf(errors: readonly unknown[] | undefined): string[] {
  return (errors ?? []).map((error) => errorCodeOf(error) ?? ErrorCode.INTERNAL_SERVER_ERROR);
}

/** True for errors this codebase raised on purpose (safe to show to clients as they are). */
export function isExpectedError(error: unknown): boolean {
  const code = errorCodeOf(error);
  return code !== undefined && code !== ErrorCode.INTERNAL_SERVER_ERROR;
}
