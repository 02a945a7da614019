import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServiceCredentials, SERVICE_CREDENTIAL_HEADER } from '../lib/auth/tokens.ts';
import { codesOf, expectCode, signUp } from './support/fixtures.ts';
import {
  postGraphQL,
  startTestSystem,
  type GraphQLResponse,
  type TestSystem,
} from './support/startTestSystem.ts';

// The payments subgraph called directly, as the orders saga does, on the built-in provider with
// production timings: only tokens that answer at once are used here. Retries, timeouts and races
// are covered with fast timings in subgraphs/payments/src/createPaymentProcessing.test.ts.

let system: TestSystem;
let alice: Awaited<ReturnType<typeof signUp>>;

beforeAll(async () => {
  system = await startTestSystem();
  alice = await signUp(system, 'Alice');
});
afterAll(() => system?.stop());

const CHARGE = /* GraphQL */ `
  mutation Charge($input: ChargePaymentInput!) {
    chargePayment(input: $input) {
      status
      reason
      payment {
        id
        status
        attempts
        amountCents
        refundedCents
        order {
          id
        }
      }
    }
  }
`;
const REFUND = /* GraphQL */ `
  mutation Refund($input: RefundPaymentInput!) {
    refundPayment(input: $input) {
      id
      status
      amountCents
      refundedCents
    }
  }
`;

const VOID = /* GraphQL */ `
  mutation Void($input: VoidChargeInput!) {
    voidCharge(input: $input) {
      status
      payment {
        id
        status
        refundedCents
      }
    }
  }
`;

interface ChargeData {
  chargePayment: {
    status: string;
    reason: string | null;
    payment: { id: string; status: string; attempts: number; amountCents: number; refundedCents: number };
  };
}
interface RefundData {
  refundPayment: { id: string; status: string; amountCents: number; refundedCents: number };
}

async function callPayments<T>(
  query: string,
  variables: Record<string, unknown>,
  service = 'orders',
): Promise<GraphQLResponse<T>> {
  const credential = await createServiceCredentials({
    secret: system.secrets.serviceSecret,
    ttlSeconds: 60,
    service,
  }).sign(null);
  return postGraphQL<T>(
    system.subgraphs.payments.url,
    { query, variables },
    { [SERVICE_CREDENTIAL_HEADER]: credential },
  );
}

const chargeInput = (paymentToken: string, overrides: Record<string, unknown> = {}) => ({
  idempotencyKey: `charge-${randomUUID()}`,
  orderId: randomUUID(),
  userId: alice.id,
  amountCents: 1_999,
  paymentToken,
  ...overrides,
});

describe('the orders service charges through the payments subgraph', () => {
  it('tok_visa is captured on the first attempt, and the owner sees the payment through the gateway', async () => {
    const response = await callPayments<ChargeData>(CHARGE, { input: chargeInput('tok_visa') });
    expect(response.errors).toBeUndefined();
    const { status, reason, payment } = response.data!.chargePayment;
    expect({ status, reason }).toEqual({ status: 'CAPTURED', reason: null });
    expect(payment).toMatchObject({ status: 'CAPTURED', attempts: 1, amountCents: 1_999, refundedCents: 0 });

    const seen = await system.graphql<{ payment: { status: string } }>(
      'query($id: ID!) { payment(id: $id) { status } }',
      { id: payment.id },
      alice.token,
    );
    expect(seen.errors).toBeUndefined();
    expect(seen.data?.payment.status).toBe('CAPTURED');
  });

  it('tok_declined is DECLINED after one attempt, with a reason that says so', async () => {
    const response = await callPayments<ChargeData>(CHARGE, { input: chargeInput('tok_declined') });
    expect(response.errors).toBeUndefined();
    const result = response.data!.chargePayment;
    expect(result.status).toBe('DECLINED');
    expect(result.reason).toMatch(/declined/);
    expect(result.payment).toMatchObject({ status: 'DECLINED', attempts: 1 });
  });

  it('tok_insufficient_funds is DECLINED for insufficient funds', async () => {
    const response = await callPayments<ChargeData>(CHARGE, { input: chargeInput('tok_insufficient_funds') });
    expect(response.errors).toBeUndefined();
    expect(response.data!.chargePayment.status).toBe('DECLINED');
    expect(response.data!.chargePayment.reason).toMatch(/insufficient funds/);
  });

  it('the same key twice returns the same payment', async () => {
    const input = chargeInput('tok_visa');
    const [first, second] = await Promise.all([
      callPayments<ChargeData>(CHARGE, { input }),
      callPayments<ChargeData>(CHARGE, { input }),
    ]);
    expect(first.errors ?? second.errors).toBeUndefined();
    expect(second.data!.chargePayment.payment.id).toBe(first.data!.chargePayment.payment.id);
    const again = await callPayments<ChargeData>(CHARGE, { input });
    expect(again.data!.chargePayment.payment).toEqual(first.data!.chargePayment.payment);
  });

  it('the same key with another amount is an IDEMPOTENCY_CONFLICT', async () => {
    const input = chargeInput('tok_visa');
    await callPayments<ChargeData>(CHARGE, { input });
    const response = await callPayments(CHARGE, {
      input: { ...input, amountCents: input.amountCents + 100 },
    });
    expectCode(response, 'IDEMPOTENCY_CONFLICT');
  });

  it('invalid input is BAD_USER_INPUT', async () => {
    const response = await callPayments(CHARGE, {
      input: chargeInput('tok_visa', { orderId: 'not-a-uuid', amountCents: -1 }),
    });
    expectCode(response, 'BAD_USER_INPUT');
  });

  it('a refund makes the payment REFUNDED in full, and a repeated refund changes nothing', async () => {
    const charged = await callPayments<ChargeData>(CHARGE, { input: chargeInput('tok_visa') });
    const paymentId = charged.data!.chargePayment.payment.id;
    const input = { idempotencyKey: `refund-${randomUUID()}`, paymentId };
    const refunded = await callPayments<RefundData>(REFUND, { input });
    expect(refunded.errors).toBeUndefined();
    expect(refunded.data!.refundPayment).toEqual({
      id: paymentId,
      status: 'REFUNDED',
      amountCents: 1_999,
      refundedCents: 1_999,
    });
    const again = await callPayments<RefundData>(REFUND, { input });
    expect(again.data!.refundPayment).toEqual(refunded.data!.refundPayment);
  });

  it('voiding a charge key before the charge arrives: the charge is then refused, nothing captured', async () => {
    const input = chargeInput('tok_visa');
    const voided = await callPayments<{ voidCharge: { status: string; payment: unknown } }>(VOID, {
      input: { chargeIdempotencyKey: input.idempotencyKey, orderId: input.orderId },
    });
    expect(voided.errors).toBeUndefined();
    expect(voided.data!.voidCharge).toEqual({ status: 'NOTHING_CAPTURED', payment: null });
    const late = await callPayments<ChargeData>(CHARGE, { input });
    expect(late.data!.chargePayment).toMatchObject({ status: 'FAILED', payment: { attempts: 0 } });
    expect(late.data!.chargePayment.reason).toMatch(/voided/);
  });
});

describe('only sibling services may charge or refund', () => {
  it('a gateway-signed credential is FORBIDDEN and charges nothing', async () => {
    const input = chargeInput('tok_visa');
    const charge = await callPayments(CHARGE, { input }, 'gateway');
    expectCode(charge, 'FORBIDDEN');
    const refund = await callPayments(
      REFUND,
      { input: { idempotencyKey: `refund-${randomUUID()}`, paymentId: randomUUID() } },
      'gateway',
    );
    expectCode(refund, 'FORBIDDEN');
    const voided = await callPayments(
      VOID,
      { input: { chargeIdempotencyKey: input.idempotencyKey, orderId: input.orderId } },
      'gateway',
    );
    expectCode(voided, 'FORBIDDEN');
    const order = await callPayments<{ _entities: ({ payment: unknown } | null)[] }>(
      'query($id: ID!) { _entities(representations: [{ __typename: "Order", id: $id }]) { ... on Order { payment { id } } } }',
      { id: input.orderId },
    );
    expect(order.data?._entities).toEqual([{ payment: null }]);
  });

  it('the public API through the gateway has no charge or refund mutations', async () => {
    const response = await system.graphql(
      'mutation { chargePayment(input: { idempotencyKey: "k", orderId: "o", userId: "u", amountCents: 1, paymentToken: "tok_visa" }) { status } }',
      {},
      alice.token,
    );
    expect(codesOf(response)).toContain('GRAPHQL_VALIDATION_FAILED');
    const voided = await system.graphql(
      'mutation { voidCharge(input: { chargeIdempotencyKey: "k", orderId: "o" }) { status } }',
      {},
      alice.token,
    );
    expect(codesOf(voided)).toContain('GRAPHQL_VALIDATION_FAILED');
  });
});
