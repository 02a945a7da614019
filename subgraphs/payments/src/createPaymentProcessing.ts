import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import {
  ExponentialBackoff,
  handleType,
  retry,
  TaskCancelledError,
  timeout,
  TimeoutStrategy,
  wrap,
} from 'cockatiel';
import { appError, badUserInput, ErrorCode } from '../../../lib/errors.ts';
import type { Logger } from '../../../lib/logger.ts';
import { TransientProviderError, type ChargeOutcome, type PaymentProvider } from './paymentProvider.ts';
import type { PaymentRecord, PaymentStore } from './store.ts';

/** API.md: tok_flaky (two transient failures) ends with attempts 3. */
export const MAX_CHARGE_ATTEMPTS = 3;

export interface PaymentTiming {
  /** How long one provider call may take before it counts as a timeout (and is retried). */
  replyTimeoutMs: number;
  /** First backoff between provider calls; it grows exponentially, with jitter. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** How often a call waits on a racing call with the same key to finish. */
  pollIntervalMs: number;
  /**
   * Headroom over a charge's worst-case duration before another call may take its key over
   * (the first caller is then presumed dead).
   */
  leaseMarginMs: number;
}

/**
 * A charge takes at most about 11 s (3 calls × 3 s + 2 backoffs of ≤ 1 s); a racing call with the
 * same key may wait up to the lease (12 s). Callers' timeouts on chargePayment should be longer.
 */
export const PRODUCTION_PAYMENT_TIMING: PaymentTiming = {
  replyTimeoutMs: 3_000,
  initialBackoffMs: 200,
  maxBackoffMs: 1_000,
  pollIntervalMs: 100,
  leaseMarginMs: 1_000,
};

/** The provider key of a charge: the same for every attempt, so a retried call never captures twice. */
export const providerChargeKey = (idempotencyKey: string) => `payments:charge:${idempotencyKey}`;
/** A payment is refunded once and in full, so its provider key is the payment's, whoever asks. */
export const providerRefundKey = (paymentId: string) => `payments:refund:${paymentId}`;

/** What voidCharge leaves behind: money returned, none taken, or a charge still running (ask again). */
export type VoidChargeStatus = 'REFUNDED' | 'NOTHING_CAPTURED' | 'PENDING';

export interface ChargeRequest {
  idempotencyKey: string;
  orderId: string;
  /** The order's owner: the orders service knows it, and "owner or ADMIN" reads it here. */
  userId: string;
  amountCents: number;
  token: string;
}

export interface PaymentProcessingDeps {
  store: PaymentStore;
  provider: PaymentProvider;
  logger: Logger;
  timing?: PaymentTiming;
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Charges and refunds through the provider, idempotent by the caller's key: the same key and
 * parameters return the stored payment, other parameters are an IDEMPOTENCY_CONFLICT. Transient
 * failures and timeouts are retried with exponential backoff and jitter, declines never are.
 */
export function createPaymentProcessing({
  store,
  provider,
  logger,
  timing = PRODUCTION_PAYMENT_TIMING,
  sleep = (ms) => delay(ms),
}: PaymentProcessingDeps) {
  // Aggressive: a provider that ignores its abort signal still cannot hold the charge past the timeout.
  const providerCall = wrap(
    retry(handleType(TransientProviderError).orType(TaskCancelledError), {
      maxAttempts: MAX_CHARGE_ATTEMPTS - 1, // cockatiel counts retries, not calls
      backoff: new ExponentialBackoff({
        initialDelay: timing.initialBackoffMs,
        maxDelay: timing.maxBackoffMs,
      }),
    }),
    timeout(timing.replyTimeoutMs, TimeoutStrategy.Aggressive),
  );
  /**
   * Runs `call` through the policy with a signal of its own. Without one, cockatiel hands every
   * execution the same never-aborted signal, and each concurrent timeout adds its listener to it:
   * past ten charges at once Node warned of a listener leak (they are removed as calls end).
   */
  const callWithPolicy = <T>(call: (signal: AbortSignal) => Promise<T>): Promise<T> =>
    providerCall.execute(({ signal }) => call(signal), new AbortController().signal);
  const leaseMs =
    MAX_CHARGE_ATTEMPTS * timing.replyTimeoutMs +
    (MAX_CHARGE_ATTEMPTS - 1) * timing.maxBackoffMs +
    timing.leaseMarginMs;

  type Attempted =
    { attempts: number; outcome: ChargeOutcome } | { attempts: number; outcome: 'failed'; reason: string };

  async function callProvider(request: ChargeRequest): Promise<Attempted> {
    let attempts = 0;
    try {
      const outcome = await callWithPolicy((signal) => {
        attempts += 1;
        return provider.charge({
          idempotencyKey: providerChargeKey(request.idempotencyKey),
          amountCents: request.amountCents,
          token: request.token,
          signal,
        });
      });
      return { attempts, outcome };
    } catch (error) {
      // Retries exhausted. After timeouts the processor may in fact have captured (its reply was
      // lost); a real adapter would look the key up at the processor before reporting FAILED.
      if (error instanceof TaskCancelledError) {
        return {
          attempts,
          outcome: 'failed',
          reason: `payment provider timeout: no reply within ${timing.replyTimeoutMs} ms after ${attempts} attempts`,
        };
      }
      if (error instanceof TransientProviderError) {
        return {
          attempts,
          outcome: 'failed',
          reason: `payment provider unavailable after ${attempts} attempts: ${error.message}`,
        };
      }
      throw error;
    }
  }

  /**
   * Returns a CAPTURED payment's money (→ REFUNDED). The provider key is the payment's, so every
   * path that refunds it (refundPayment, voidCharge, a voided charge ending) refunds it once.
   */
  async function refundCaptured(payment: PaymentRecord): Promise<PaymentRecord> {
    // Demo payments were recorded without a processor charge: there is nothing to return there.
    const chargeId = payment.providerChargeId;
    if (chargeId) {
      try {
        await callWithPolicy((signal) =>
          provider.refund({
            idempotencyKey: providerRefundKey(payment.id),
            chargeId,
            amountCents: payment.amountCents,
            signal,
          }),
        );
      } catch (error) {
        if (error instanceof TaskCancelledError || error instanceof TransientProviderError) {
          // A refund has no FAILED outcome: the money must go back, so the caller retries later.
          throw appError(
            ErrorCode.SERVICE_UNAVAILABLE,
            'the payment provider did not confirm the refund; retry with the same idempotency key',
          );
        }
        throw error;
      }
    }
    return store.markRefunded(payment.id);
  }

  async function runCharge(request: ChargeRequest): Promise<PaymentRecord> {
    let result: Attempted;
    try {
      result = await callProvider(request);
    } catch (error) {
      await store.releaseCharge(request.idempotencyKey).catch(() => {});
      throw error;
    }
    const { outcome } = result;
    const { payment, voided } = await store.completeCharge({
      idempotencyKey: request.idempotencyKey,
      orderId: request.orderId,
      userId: request.userId,
      amountCents: request.amountCents,
      attempts: result.attempts,
      refundedCents: 0,
      ...(outcome === 'failed'
        ? { status: 'FAILED', reason: result.reason }
        : outcome.outcome === 'captured'
          ? { status: 'CAPTURED', providerChargeId: outcome.chargeId }
          : { status: 'DECLINED', reason: outcome.reason }),
    });
    logger.info(
      { paymentId: payment.id, orderId: payment.orderId, status: payment.status, attempts: payment.attempts },
      'charge finished',
    );
    if (!voided || payment.status !== 'CAPTURED') return payment;
    // Its order was cancelled while this charge ran: the capture goes back at once.
    try {
      const refunded = await refundCaptured(payment);
      logger.info({ paymentId: payment.id, orderId: payment.orderId }, 'voided charge captured: refunded');
      return refunded;
    } catch (error) {
      // Still CAPTURED and voided: the void's caller asks again, and that call refunds it.
      logger.warn({ err: error, paymentId: payment.id }, 'voided charge captured; refund to be retried');
      return payment;
    }
  }

  /** A charge arriving after its key was voided: refused before the processor, stored as FAILED. */
  async function refuseVoided(request: ChargeRequest): Promise<PaymentRecord> {
    const { payment } = await store.completeCharge({
      idempotencyKey: request.idempotencyKey,
      orderId: request.orderId,
      userId: request.userId,
      amountCents: request.amountCents,
      attempts: 0,
      refundedCents: 0,
      status: 'FAILED',
      reason: 'charge voided: the order was cancelled before it was charged',
    });
    logger.info({ paymentId: payment.id, orderId: payment.orderId }, 'voided charge refused');
    return payment;
  }

  return {
    async chargePayment(request: ChargeRequest): Promise<PaymentRecord> {
      const fingerprint = createHash('sha256')
        .update(JSON.stringify([request.orderId, request.userId, request.amountCents, request.token]))
        .digest('hex');
      // Bounded: a busy key's lease runs out, and then this call takes it over.
      for (;;) {
        const claim = await store.claimCharge({
          idempotencyKey: request.idempotencyKey,
          orderId: request.orderId,
          fingerprint,
          leaseMs,
        });
        switch (claim.kind) {
          case 'owned':
            return runCharge(request);
          case 'done':
            return claim.payment;
          case 'voided':
            return refuseVoided(request);
          case 'conflict':
            throw appError(ErrorCode.IDEMPOTENCY_CONFLICT, claim.message);
          case 'busy':
            await sleep(timing.pollIntervalMs);
        }
      }
    },

    /**
     * Refunds a CAPTURED payment in full (→ REFUNDED). A payment already refunded, DECLINED or
     * FAILED is returned as it is: compensation may run again after a crash and must be a no-op.
     */
    async refundPayment({
      idempotencyKey,
      paymentId,
    }: {
      idempotencyKey: string;
      paymentId: string;
    }): Promise<PaymentRecord> {
      const [payment] = await store.findByIds([paymentId]);
      if (!payment) throw badUserInput(`no payment ${paymentId}`);
      if (!(await store.claimRefund({ idempotencyKey, paymentId }))) {
        throw appError(
          ErrorCode.IDEMPOTENCY_CONFLICT,
          `idempotency key ${idempotencyKey} was already used to refund another payment`,
        );
      }
      if (payment.status !== 'CAPTURED') return payment;
      return refundCaptured(payment);
    },

    /**
     * Cancels an order's charge by its idempotency key, whatever state the charge is in (the
     * saga's compensation, which may never have heard back from chargePayment). A capture is
     * refunded; a charge still running is refunded by its own call as soon as it captures
     * (PENDING: ask again); a charge that has not arrived yet will be refused. Idempotent.
     */
    async voidCharge({
      chargeIdempotencyKey,
      orderId,
    }: {
      chargeIdempotencyKey: string;
      orderId: string;
    }): Promise<{ status: VoidChargeStatus; payment: PaymentRecord | null }> {
      const claim = await store.voidCharge({ idempotencyKey: chargeIdempotencyKey, orderId });
      switch (claim.kind) {
        case 'conflict':
          throw appError(ErrorCode.IDEMPOTENCY_CONFLICT, claim.message);
        case 'running':
          return { status: 'PENDING', payment: null };
        case 'voided':
          return { status: 'NOTHING_CAPTURED', payment: null };
        case 'done': {
          const payment =
            claim.payment.status === 'CAPTURED' ? await refundCaptured(claim.payment) : claim.payment;
          return { status: payment.status === 'REFUNDED' ? 'REFUNDED' : 'NOTHING_CAPTURED', payment };
        }
      }
    },
  };
}
export type PaymentProcessing = ReturnType<typeof createPaymentProcessing>;
