import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { TransientProviderError, type ChargeOutcome, type PaymentProvider } from './paymentProvider.ts';

/** The test tokens of API.md ("The order saga"), as a card processor's test mode would offer them. */
export const TestToken = {
  VISA: 'tok_visa',
  DECLINED: 'tok_declined',
  INSUFFICIENT_FUNDS: 'tok_insufficient_funds',
  FLAKY: 'tok_flaky',
  TIMEOUT: 'tok_timeout',
  TIMEOUT_CAPTURED: 'tok_timeout_captured',
} as const;

/** How many transient failures tok_flaky gives per idempotency key before it captures. */
const FLAKY_FAILURES = 2;
/**
 * A "never in time" reply hangs until the caller aborts; without a signal it gives up after this
 * many reply timeouts, so a careless caller cannot leak a pending call forever.
 */
const HANG_REPLY_TIMEOUTS = 10;

export interface CaptureRecord {
  idempotencyKey: string;
  chargeId: string;
  amountCents: number;
  token: string;
}

export interface RefundRecord {
  idempotencyKey: string;
  refundId: string;
  chargeId: string;
  amountCents: number;
}

export interface TestPaymentProviderOptions {
  /** The caller's reply timeout: a hanging reply lasts well beyond it (see HANG_REPLY_TIMEOUTS). */
  replyTimeoutMs: number;
  /** Waits `ms`, rejecting when `signal` aborts (tests may pass a fake clock's sleep). */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export type TestPaymentProvider = PaymentProvider & {
  /** Every capture made, in order: a charge captured twice shows up twice. */
  captures(): readonly CaptureRecord[];
  capturesFor(idempotencyKey: string): number;
  /** Every refund made, in order. */
  refunds(): readonly RefundRecord[];
  /** Charge calls received for a key (attempts as the processor saw them). */
  chargeCallsFor(idempotencyKey: string): number;
};

/**
 * The built-in provider: the test mode of a card processor. Its memory (captures and refunds per
 * idempotency key) is the external system's, so it lives in this object, not in the payments
 * database: a retried call must find the processor's own record, as with a real one.
 */
export function createTestPaymentProvider({
  replyTimeoutMs,
  sleep = (ms, signal) => delay(ms, undefined, { signal }),
}: TestPaymentProviderOptions): TestPaymentProvider {
  const charges = new Map<
    string,
    { calls: number; amountCents: number; token: string; outcome?: ChargeOutcome }
  >();
  const refundsByKey = new Map<string, RefundRecord>();
  const captureLog: CaptureRecord[] = [];
  const refundLog: RefundRecord[] = [];

  async function hang(signal: AbortSignal | undefined): Promise<never> {
    await sleep(replyTimeoutMs * HANG_REPLY_TIMEOUTS, signal);
    throw new TransientProviderError('the payment processor did not reply');
  }

  function capture(idempotencyKey: string, amountCents: number, token: string): ChargeOutcome {
    const chargeId = `ch_test_${randomUUID()}`;
    captureLog.push({ idempotencyKey, chargeId, amountCents, token });
    return { outcome: 'captured', chargeId };
  }

  return {
    async charge({ idempotencyKey, amountCents, token, signal }) {
      signal?.throwIfAborted();
      let state = charges.get(idempotencyKey);
      if (!state) {
        state = { calls: 0, amountCents, token };
        charges.set(idempotencyKey, state);
      } else if (state.amountCents !== amountCents || state.token !== token) {
        // As real processors do: a key names one request, reusing it for another is a bug.
        throw new Error(`idempotency key ${idempotencyKey} was used with other parameters`);
      }
      state.calls += 1;
      // A repeated key answers with the first outcome, whatever the token would do now.
      if (state.outcome) return state.outcome;

      switch (token) {
        case TestToken.VISA:
          return (state.outcome = capture(idempotencyKey, amountCents, token));
        case TestToken.DECLINED:
          return (state.outcome = { outcome: 'declined', reason: 'card declined' });
        case TestToken.INSUFFICIENT_FUNDS:
          return (state.outcome = { outcome: 'declined', reason: 'card declined: insufficient funds' });
        case TestToken.FLAKY:
          if (state.calls <= FLAKY_FAILURES) {
            throw new TransientProviderError('the payment processor is temporarily unavailable');
          }
          return (state.outcome = capture(idempotencyKey, amountCents, token));
        case TestToken.TIMEOUT:
          return hang(signal);
        case TestToken.TIMEOUT_CAPTURED:
          // Captured and recorded, but the reply is lost: only a retry with this key learns of it.
          state.outcome = capture(idempotencyKey, amountCents, token);
          return hang(signal);
        default:
          return (state.outcome = { outcome: 'declined', reason: 'card declined: unknown payment token' });
      }
    },

    async refund({ idempotencyKey, chargeId, amountCents, signal }) {
      signal?.throwIfAborted();
      const known = refundsByKey.get(idempotencyKey);
      if (known) return { refundId: known.refundId };
      // The charge is not checked against this object's memory: after a restart of the embedded
      // default (PGlite kept in DATA_DIR) the payments it captured must still be refundable.
      const refund = { idempotencyKey, refundId: `re_test_${randomUUID()}`, chargeId, amountCents };
      refundsByKey.set(idempotencyKey, refund);
      refundLog.push(refund);
      return { refundId: refund.refundId };
    },

    captures: () => [...captureLog],
    capturesFor: (key) => captureLog.filter((c) => c.idempotencyKey === key).length,
    refunds: () => [...refundLog],
    chargeCallsFor: (key) => charges.get(key)?.calls ?? 0,
  };
}
