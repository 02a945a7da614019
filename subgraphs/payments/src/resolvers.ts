import DataLoader from 'dataloader';
import { requireSelfOrAdmin, requireViewer } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import type { PaymentRecord, PaymentStore } from './store.ts';

export interface PaymentsContext {
  viewer: Viewer | null;
  payments: DataLoader<string, PaymentRecord | null>;
  paymentsByOrder: DataLoader<string, PaymentRecord | null>;
}

export function createPaymentsContext(store: PaymentStore, caller: ServiceCaller): PaymentsContext {
  return {
    viewer: caller.viewer,
    payments: new DataLoader((ids) => store.findByIds(ids)),
    paymentsByOrder: new DataLoader((orderIds) => store.findByOrderIds(orderIds)),
  };
}

export function createPaymentsResolvers() {
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
