/**
 * The card processor as the payments service sees it: the place where a real processor (Stripe,
 * Adyen) plugs in. Every call carries an idempotency key, and a processor must answer a repeated
 * key with its first outcome: that is what lets the service retry a call whose reply was lost
 * without charging twice.
 */
export interface PaymentProvider {
  /** Resolves with the outcome; throws TransientProviderError when trying again may succeed. */
  charge(request: {
    idempotencyKey: string;
    amountCents: number;
    token: string;
    /** Aborted when the caller stops waiting (its reply timeout): the call should give up. */
    signal?: AbortSignal;
  }): Promise<ChargeOutcome>;
  refund(request: {
    idempotencyKey: string;
    chargeId: string;
    amountCents: number;
    signal?: AbortSignal;
  }): Promise<{ refundId: string }>;
}

export type ChargeOutcome =
  | { outcome: 'captured'; chargeId: string }
  /** Permanent: the same card and amount would be declined again, so it is never retried. */
  | { outcome: 'declined'; reason: string };

/** A failure that may heal (network error, 5xx, rate limit): the call may be retried with the same key. */
export class TransientProviderError extends Error {
  readonly retriable = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TransientProviderError';
  }
}
