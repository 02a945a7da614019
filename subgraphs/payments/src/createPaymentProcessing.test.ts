import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { GraphQLError } from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testConfig, uniqueSchemaPrefix } from '../../../test/support/testConfig.ts';
import type { Database } from '../../../lib/db/createDatabase.ts';
import { migrate } from '../../../lib/db/migrate.ts';
import { openServiceDatabase } from '../../../lib/db/openServiceDatabase.ts';
import { createLogger } from '../../../lib/logger.ts';
import {
  createPaymentProcessing,
  providerChargeKey,
  type ChargeRequest,
  type PaymentTiming,
} from './createPaymentProcessing.ts';
import { createTestPaymentProvider, TestToken } from './createTestPaymentProvider.ts';
import type { PaymentProvider } from './paymentProvider.ts';
import { createPaymentStore, type PaymentStore } from './store.ts';

/** Short enough that tok_timeout's three timed-out calls end in well under a second. */
const FAST_TIMING: PaymentTiming = {
  replyTimeoutMs: 50,
  initialBackoffMs: 10,
  maxBackoffMs: 40,
  pollIntervalMs: 10,
  leaseMarginMs: 50,
};

let db: Database;
let store: PaymentStore;

beforeAll(async () => {
  db = await openServiceDatabase(testConfig(), { schema: `${uniqueSchemaPrefix()}payments` });
  await migrate(db, fileURLToPath(new URL('../migrations', import.meta.url)));
  store = createPaymentStore(db);
});
afterAll(async () => {
  if (db?.kind === 'postgres') await db.query(`DROP SCHEMA IF EXISTS ${db.schema} CASCADE`);
  await db?.close();
});

/** A fresh card processor (its own memory) and the payments logic in front of it. */
function setUp() {
  const provider = createTestPaymentProvider({ replyTimeoutMs: FAST_TIMING.replyTimeoutMs });
  const processing = createPaymentProcessing({
    store,
    provider,
    logger: createLogger({ level: 'silent', service: 'test' }),
    timing: FAST_TIMING,
  });
  return { provider, processing };
}

function chargeRequest(token: string, overrides: Partial<ChargeRequest> = {}): ChargeRequest {
  return {
    idempotencyKey: `charge-${randomUUID()}`,
    orderId: randomUUID(),
    userId: randomUUID(),
    amountCents: 2_500,
    token,
    ...overrides,
  };
}

async function expectErrorCode(promise: Promise<unknown>, code: string) {
  const error: unknown = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(GraphQLError);
  expect((error as GraphQLError).extensions['code']).toBe(code);
}

describe('charging with the test tokens of API.md', () => {
  it('tok_visa is captured on the first attempt', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.VISA));
    expect(payment).toMatchObject({ status: 'CAPTURED', attempts: 1, reason: null, refundedCents: 0 });
    expect(provider.captures()).toEqual([
      expect.objectContaining({ chargeId: payment.providerChargeId, amountCents: 2_500 }),
    ]);
  });

  it('tok_declined is declined once and never retried', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.DECLINED);
    const payment = await processing.chargePayment(request);
    expect(payment).toMatchObject({ status: 'DECLINED', attempts: 1 });
    expect(payment.reason).toMatch(/declined/);
    expect(provider.chargeCallsFor(providerChargeKey(request.idempotencyKey))).toBe(1);
    expect(provider.captures()).toEqual([]);
  });

  it('tok_insufficient_funds is declined for insufficient funds and never retried', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.INSUFFICIENT_FUNDS));
    expect(payment).toMatchObject({ status: 'DECLINED', attempts: 1 });
    expect(payment.reason).toMatch(/insufficient funds/);
    expect(provider.captures()).toEqual([]);
  });

  it('tok_flaky fails twice, then is captured on the third attempt', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.FLAKY));
    expect(payment).toMatchObject({ status: 'CAPTURED', attempts: 3, reason: null });
    expect(provider.captures()).toHaveLength(1);
  });

  it('tok_timeout fails after three timed-out attempts, with nothing captured', async () => {
    const { provider, processing } = setUp();
    const startedAt = performance.now();
    const payment = await processing.chargePayment(chargeRequest(TestToken.TIMEOUT));
    expect(performance.now() - startedAt).toBeLessThan(1_000);
    expect(payment).toMatchObject({ status: 'FAILED', attempts: 3, providerChargeId: null });
    expect(payment.reason).toMatch(/timeout/);
    expect(provider.captures()).toEqual([]);
  });

  it('tok_timeout_captured is captured exactly once: the retry with the same key finds the capture', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.TIMEOUT_CAPTURED));
    expect(payment).toMatchObject({ status: 'CAPTURED', attempts: 2 });
    expect(provider.captures()).toEqual([expect.objectContaining({ chargeId: payment.providerChargeId })]);
  });
});

describe('many charges at once', () => {
  it('raise no listener-leak warning (each provider call has a signal of its own)', async () => {
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const provider: PaymentProvider = {
        async charge({ idempotencyKey }) {
          await new Promise((resolve) => setTimeout(resolve, 20));
          return { outcome: 'captured', chargeId: `ch_${idempotencyKey}` };
        },
        refund: () => Promise.reject(new Error('not used')),
      };
      const processing = createPaymentProcessing({
        store,
        provider,
        logger: createLogger({ level: 'silent', service: 'test' }),
        timing: FAST_TIMING,
      });
      const payments = await Promise.all(
        Array.from({ length: 30 }, () => processing.chargePayment(chargeRequest(TestToken.VISA))),
      );
      for (const payment of payments) expect(payment.status).toBe('CAPTURED');
      // Node emits process warnings on the next tick.
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings.filter((w) => w.name === 'MaxListenersExceededWarning')).toEqual([]);
    } finally {
      process.off('warning', onWarning);
    }
  });
});

describe('charges are idempotent by key', () => {
  it('the same key and parameters return the stored payment without calling the provider again', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    const first = await processing.chargePayment(request);
    const second = await processing.chargePayment(request);
    expect(second).toEqual(first);
    expect(provider.chargeCallsFor(providerChargeKey(request.idempotencyKey))).toBe(1);
    expect(provider.captures()).toHaveLength(1);
  });

  it('racing calls with the same key make one payment and one capture', async () => {
    const { provider, processing } = setUp();
    // tok_flaky keeps the first call busy through its backoffs, so the others really overlap it.
    const request = chargeRequest(TestToken.FLAKY);
    const payments = await Promise.all(Array.from({ length: 5 }, () => processing.chargePayment(request)));
    expect(new Set(payments.map((p) => p.id)).size).toBe(1);
    expect(payments[0]).toMatchObject({ status: 'CAPTURED', attempts: 3 });
    expect(provider.chargeCallsFor(providerChargeKey(request.idempotencyKey))).toBe(3);
    expect(provider.captures()).toHaveLength(1);
  });

  it('the same key with another amount is an IDEMPOTENCY_CONFLICT and charges nothing more', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    await processing.chargePayment(request);
    await expectErrorCode(
      processing.chargePayment({ ...request, amountCents: request.amountCents + 1 }),
      'IDEMPOTENCY_CONFLICT',
    );
    await expectErrorCode(
      processing.chargePayment({ ...request, token: TestToken.FLAKY }),
      'IDEMPOTENCY_CONFLICT',
    );
    expect(provider.captures()).toHaveLength(1);
  });

  it('a second key for an order already charged is an IDEMPOTENCY_CONFLICT', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    await processing.chargePayment(request);
    await expectErrorCode(
      processing.chargePayment({ ...request, idempotencyKey: `charge-${randomUUID()}` }),
      'IDEMPOTENCY_CONFLICT',
    );
    expect(provider.captures()).toHaveLength(1);
  });

  it('a charge whose caller died after reaching the processor is finished by the next call, capturing once', async () => {
    const { provider } = setUp();
    const request = chargeRequest(TestToken.VISA);
    const logger = createLogger({ level: 'silent', service: 'test' });
    // The first process reaches the processor, then dies before storing the outcome: its store
    // never answers again, and its claim on the key is left to run out.
    const dying = createPaymentProcessing({
      store: { ...store, completeCharge: () => new Promise<never>(() => {}) },
      provider,
      logger,
      timing: FAST_TIMING,
    });
    void dying.chargePayment(request);
    await expect.poll(() => provider.captures().length).toBe(1);

    const restarted = createPaymentProcessing({ store, provider, logger, timing: FAST_TIMING });
    const payment = await restarted.chargePayment(request);
    expect(payment).toMatchObject({ status: 'CAPTURED', providerChargeId: provider.captures()[0]?.chargeId });
    expect(provider.captures()).toHaveLength(1);
  });
});

describe('refunds', () => {
  it('a captured payment is refunded in full, once, however often and with whatever key it is asked', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.VISA));
    const refund = { idempotencyKey: `refund-${randomUUID()}`, paymentId: payment.id };
    const refunded = await processing.refundPayment(refund);
    expect(refunded).toMatchObject({
      id: payment.id,
      status: 'REFUNDED',
      refundedCents: payment.amountCents,
    });
    expect(await processing.refundPayment(refund)).toEqual(refunded);
    await Promise.all([
      processing.refundPayment({ idempotencyKey: `refund-${randomUUID()}`, paymentId: payment.id }),
      processing.refundPayment({ idempotencyKey: `refund-${randomUUID()}`, paymentId: payment.id }),
    ]);
    expect(provider.refunds()).toEqual([
      expect.objectContaining({ chargeId: payment.providerChargeId, amountCents: payment.amountCents }),
    ]);
  });

  it('racing refunds of a captured payment return the money once', async () => {
    const { provider, processing } = setUp();
    const payment = await processing.chargePayment(chargeRequest(TestToken.VISA));
    const refund = { idempotencyKey: `refund-${randomUUID()}`, paymentId: payment.id };
    const results = await Promise.all([processing.refundPayment(refund), processing.refundPayment(refund)]);
    expect(results.map((p) => p.status)).toEqual(['REFUNDED', 'REFUNDED']);
    expect(provider.refunds()).toHaveLength(1);
  });

  it('refunding a declined or failed payment is a no-op that returns it', async () => {
    const { provider, processing } = setUp();
    const declined = await processing.chargePayment(chargeRequest(TestToken.DECLINED));
    const refunded = await processing.refundPayment({
      idempotencyKey: `refund-${randomUUID()}`,
      paymentId: declined.id,
    });
    expect(refunded).toMatchObject({ status: 'DECLINED', refundedCents: 0 });
    expect(provider.refunds()).toEqual([]);
  });

  it('a refund key reused for another payment is an IDEMPOTENCY_CONFLICT', async () => {
    const { processing } = setUp();
    const first = await processing.chargePayment(chargeRequest(TestToken.VISA));
    const second = await processing.chargePayment(chargeRequest(TestToken.VISA));
    const idempotencyKey = `refund-${randomUUID()}`;
    await processing.refundPayment({ idempotencyKey, paymentId: first.id });
    await expectErrorCode(
      processing.refundPayment({ idempotencyKey, paymentId: second.id }),
      'IDEMPOTENCY_CONFLICT',
    );
    expect((await store.findByIds([second.id]))[0]?.status).toBe('CAPTURED');
  });

  it('refunding an unknown payment is BAD_USER_INPUT', async () => {
    const { processing } = setUp();
    await expectErrorCode(
      processing.refundPayment({ idempotencyKey: `refund-${randomUUID()}`, paymentId: randomUUID() }),
      'BAD_USER_INPUT',
    );
  });
});

describe('voiding a charge by its key (the saga compensating a charge it never heard back from)', () => {
  /** A processor whose charges wait until `open()`: a charge that is still running at payments. */
  function gatedSetUp() {
    const inner = createTestPaymentProvider({ replyTimeoutMs: 10_000 });
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    let waiting = 0;
    const provider: PaymentProvider = {
      charge: async (request) => {
        waiting += 1;
        await gate;
        return inner.charge(request);
      },
      refund: (request) => inner.refund(request),
    };
    // Long reply timeouts: the charge waits at the gate without timing out.
    const timing = { ...FAST_TIMING, replyTimeoutMs: 10_000 };
    const logger = createLogger({ level: 'silent', service: 'test' });
    return {
      inner,
      open,
      waiting: () => waiting,
      processing: createPaymentProcessing({ store, provider, logger, timing }),
    };
  }
  const voidOf = (request: ChargeRequest) => ({
    chargeIdempotencyKey: request.idempotencyKey,
    orderId: request.orderId,
  });

  it('a captured charge is refunded, once, however often it is voided', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    const payment = await processing.chargePayment(request);
    const results = await Promise.all([
      processing.voidCharge(voidOf(request)),
      processing.voidCharge(voidOf(request)),
    ]);
    expect(results.map((r) => [r.status, r.payment?.id, r.payment?.refundedCents])).toEqual([
      ['REFUNDED', payment.id, payment.amountCents],
      ['REFUNDED', payment.id, payment.amountCents],
    ]);
    expect((await processing.voidCharge(voidOf(request))).status).toBe('REFUNDED');
    expect(provider.refunds()).toEqual([expect.objectContaining({ chargeId: payment.providerChargeId })]);
  });

  it('a declined charge has nothing to return', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.DECLINED);
    await processing.chargePayment(request);
    expect(await processing.voidCharge(voidOf(request))).toMatchObject({
      status: 'NOTHING_CAPTURED',
      payment: { status: 'DECLINED' },
    });
    expect(provider.refunds()).toEqual([]);
  });

  it('voided before the charge arrives: the late charge is refused without reaching the processor', async () => {
    const { provider, processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    expect(await processing.voidCharge(voidOf(request))).toEqual({
      status: 'NOTHING_CAPTURED',
      payment: null,
    });
    const late = await processing.chargePayment(request);
    expect(late).toMatchObject({ status: 'FAILED', attempts: 0, refundedCents: 0 });
    expect(late.reason).toMatch(/voided/);
    expect(provider.chargeCallsFor(providerChargeKey(request.idempotencyKey))).toBe(0);
    expect((await processing.voidCharge(voidOf(request))).status).toBe('NOTHING_CAPTURED');
  });

  it('voided while the charge is still running: PENDING, then the capture is refunded as soon as it lands', async () => {
    const { inner, open, waiting, processing } = gatedSetUp();
    const request = chargeRequest(TestToken.VISA);
    const charging = processing.chargePayment(request);
    await expect.poll(waiting).toBe(1); // at the processor, its outcome not yet known
    expect(await processing.voidCharge(voidOf(request))).toEqual({ status: 'PENDING', payment: null });
    open();
    const payment = await charging;
    expect(payment).toMatchObject({ status: 'REFUNDED', refundedCents: request.amountCents });
    expect(inner.captures()).toHaveLength(1);
    expect(inner.refunds()).toEqual([expect.objectContaining({ chargeId: inner.captures()[0]?.chargeId })]);
    expect(await processing.voidCharge(voidOf(request))).toMatchObject({
      status: 'REFUNDED',
      payment: { id: payment.id },
    });
    expect(inner.refunds()).toHaveLength(1);
  });

  it('a charge key voided for another order is an IDEMPOTENCY_CONFLICT and voids nothing', async () => {
    const { processing } = setUp();
    const request = chargeRequest(TestToken.VISA);
    await processing.chargePayment(request);
    await expectErrorCode(
      processing.voidCharge({ chargeIdempotencyKey: request.idempotencyKey, orderId: randomUUID() }),
      'IDEMPOTENCY_CONFLICT',
    );
    expect((await processing.chargePayment(request)).status).toBe('CAPTURED');
  });
});

describe('storing a charge outcome', () => {
  const outcome = (idempotencyKey: string, orderId: string, status: 'CAPTURED' | 'FAILED') => ({
    idempotencyKey,
    orderId,
    userId: randomUUID(),
    amountCents: 900,
    status,
    attempts: 1,
    refundedCents: 0,
  });

  it('two calls storing outcomes under one key at once keep the first, both answer with it', async () => {
    const key = `charge-${randomUUID()}`;
    const orderId = randomUUID();
    expect(await store.claimCharge({ idempotencyKey: key, orderId, fingerprint: 'f', leaseMs: 1 })).toEqual({
      kind: 'owned',
    });
    const [a, b] = await Promise.all([
      store.completeCharge(outcome(key, orderId, 'CAPTURED')),
      store.completeCharge(outcome(key, orderId, 'FAILED')),
    ]);
    expect(b.payment).toEqual(a.payment);
    expect([a.voided, b.voided]).toEqual([false, false]);
    expect(await store.claimCharge({ idempotencyKey: key, orderId, fingerprint: 'f', leaseMs: 1 })).toEqual({
      kind: 'done',
      payment: a.payment,
    });
  });

  it('an outcome stored after its key was voided says so, and a void after it finds the outcome', async () => {
    const key = `charge-${randomUUID()}`;
    const orderId = randomUUID();
    await store.claimCharge({ idempotencyKey: key, orderId, fingerprint: 'f', leaseMs: 60_000 });
    expect(await store.voidCharge({ idempotencyKey: key, orderId })).toEqual({ kind: 'running' });
    const stored = await store.completeCharge(outcome(key, orderId, 'CAPTURED'));
    expect(stored).toMatchObject({ voided: true, payment: { status: 'CAPTURED', orderId } });
    expect(await store.voidCharge({ idempotencyKey: key, orderId })).toEqual({
      kind: 'done',
      payment: stored.payment,
    });
  });
});
