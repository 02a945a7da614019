import DataLoader from 'dataloader';
import { z } from 'zod';
import { requireSelfOrAdmin, requireServiceCaller, requireViewer } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { parseInput } from '../../../lib/graphql/parseInput.ts';
import type { PaymentProcessing } from './createPaymentProcessing.ts';
import type { PaymentRecord, PaymentStore } from './store.ts';

/** The services that may charge and refund: the gateway (any client) never may. */
const INTERNAL_CALLERS: readonly string[] = ['orders'];

export interface PaymentsContext {
  viewer: Viewer | null;
  /** The verified caller (from the signed service credential). */
  caller: ServiceCaller;
  payments: DataLoader<string, PaymentRecord | null>;
  paymentsByOrder: DataLoader<string, PaymentRecord | null>;
}

export function createPaymentsContext(store: PaymentStore, caller: ServiceCaller): PaymentsContext {
  return {
    viewer: caller.viewer,
    caller,
    payments: new DataLoader((ids) => store.findByIds(ids)),
    paymentsByOrder: new DataLoader((orderIds) => store.findByOrderIds(orderIds)),
  };
}

function requireInternalCaller(caller: ServiceCaller) {
  requireServiceCaller(caller, INTERNAL_CALLERS, 'charge or refund payments');
}

const idempotencyKey = z
  .string()
  .trim()
  .min(1, 'must not be empty')
  .max(200, 'must be at most 200 characters');
const chargePaymentInput = z.object({
  idempotencyKey,
  orderId: z.uuid(),
  userId: z.uuid(),
  amountCents: z.number().int().min(0, 'must not be negative'),
  paymentToken: z.string().min(1, 'must not be empty').max(200, 'must be at most 200 characters'),
});
const refundPaymentInput = z.object({ idempotencyKey, paymentId: z.uuid() });
const voidChargeInput = z.object({ chargeIdempotencyKey: idempotencyKey, orderId: z.uuid() });

export function createPaymentsResolvers({ processing }: { processing: PaymentProcessing }) {
  return {
    DateTime: dateTimeScalar,
    Query: {
      payment: async (_: unknown, { id }: { id: string }, ctx: PaymentsContext) => {
        requireViewer(ctx.viewer);
        const payment = await ctx.payments.load(id);
        if (payment) requireSelfOrAdmin(ctx.viewer, payment.userId, 'payments');
        return payment;
      },
    },
    Mutation: {
      chargePayment: async (_: unknown, { input }: { input: unknown }, ctx: PaymentsContext) => {
        requireInternalCaller(ctx.caller);
        const valid = parseInput(chargePaymentInput, input);
        const payment = await processing.chargePayment({ ...valid, token: valid.paymentToken });
        return { payment, status: payment.status, reason: payment.reason };
      },
      refundPayment: (_: unknown, { input }: { input: unknown }, ctx: PaymentsContext) => {
        requireInternalCaller(ctx.caller);
        return processing.refundPayment(parseInput(refundPaymentInput, input));
      },
      voidCharge: (_: unknown, { input }: { input: unknown }, ctx: PaymentsContext) => {
        requireInternalCaller(ctx.caller);
        return processing.voidCharge(parseInput(voidChargeInput, input));
      },
    },
    Payment: {
      __resolveReference: (ref: { id: string }, ctx: PaymentsContext) => ctx.payments.load(ref.id),
      order: (payment: PaymentRecord) => ({ __typename: 'Order', id: payment.orderId }),
    },
    Order: {
      // The orders subgraph has already checked that the viewer may see this order.
      __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
      payment: (order: { id: string }, _: unknown, ctx: PaymentsContext) =>
        ctx.paymentsByOrder.load(order.id),
    },
  };
}
