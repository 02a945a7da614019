import DataLoader from 'dataloader';
import { requireSelfOrAdmin, requireViewer } from '../../../lib/auth/authorize.ts';
import { Role, type ServiceCaller, type Viewer } from '../../../lib/auth/tokens.ts';
import { decodeCursor, pageSize, toConnection } from '../../../lib/graphql/connection.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { appError, badUserInput, ErrorCode } from '../../../lib/errors.ts';
import type { OrderStatusChange, OrderStatusFeed } from './createOrderStatusFeed.ts';
import { SubgraphCallError } from './saga/createSubgraphClient.ts';
import type { PlaceOrder } from './saga/placeOrder.ts';
import type { OrderItemRecord, OrderRecord, OrderStore, SagaStepRecord } from './store.ts';

export interface OrdersContext {
  viewer: Viewer | null;
  orders: DataLoader<string, OrderRecord | null>;
  items: DataLoader<string, OrderItemRecord[]>;
  steps: DataLoader<string, SagaStepRecord[]>;
}

export function createOrdersContext(store: OrderStore, caller: ServiceCaller): OrdersContext {
  return {
    viewer: caller.viewer,
    orders: new DataLoader((ids) => store.findByIds(ids)),
    items: new DataLoader((ids) => store.itemsOf(ids)),
    steps: new DataLoader((ids) => store.stepsOf(ids)),
  };
}

const CURSOR_KIND = 'order';

export function createOrdersResolvers({
  store,
  placeOrder,
  statusFeed,
}: {
  store: OrderStore;
  placeOrder: PlaceOrder;
  statusFeed: OrderStatusFeed;
}) {
  return {
    DateTime: dateTimeScalar,
    Mutation: {
      placeOrder: async (_: unknown, { input }: { input: unknown }, ctx: OrdersContext) => {
        try {
          const id = await placeOrder(ctx.viewer, input);
          const [order] = await store.findByIds([id]);
          return order;
        } catch (error) {
          if (error instanceof SubgraphCallError && error.transient) {
            throw appError(
              ErrorCode.SERVICE_UNAVAILABLE,
              'A service the order needs is unavailable; try again.',
            );
          }
          throw error;
        }
      },
    },
    Query: {
      order: async (_: unknown, { id }: { id: string }, ctx: OrdersContext) => {
        requireViewer(ctx.viewer);
        const order = await ctx.orders.load(id);
        if (order) requireSelfOrAdmin(ctx.viewer, order.userId, 'orders');
        return order;
      },
    },
    Subscription: {
      orderStatusChanged: {
        subscribe: async (_: unknown, { orderId }: { orderId?: string | null }, ctx: OrdersContext) => {
          const viewer = requireViewer(ctx.viewer);
          if (orderId !== undefined && orderId !== null) {
            const order = await ctx.orders.load(orderId);
            if (!order) throw badUserInput('There is no order with this id.', { argumentName: 'orderId' });
            requireSelfOrAdmin(viewer, order.userId, 'orders');
            return statusFeed.subscribe((change) => change.orderId === order.id);
          }
          const everyone = viewer.role === Role.ADMIN;
          return statusFeed.subscribe((change) => everyone || change.userId === viewer.id);
        },
        // The status (and reason) as the event tells it, even if the order has moved on since;
        // the other fields as they are now.
        resolve: async (change: OrderStatusChange, _: unknown, ctx: OrdersContext) => {
          const order = await ctx.orders.load(change.orderId);
          if (!order) throw new Error(`order ${change.orderId} of a status event is missing`);
          return {
            ...order,
            status: change.status,
            failureReason:
              change.status === 'CANCELLED' ? (change.failureReason ?? order.failureReason) : null,
            updatedAt: change.occurredAt,
          };
        },
      },
    },
    User: {
      __resolveReference: (ref: { id: string }) => ({ id: ref.id }),
      orders: async (
        user: { id: string },
        args: { first?: number | null; after?: string | null },
        ctx: OrdersContext,
      ) => {
        requireSelfOrAdmin(ctx.viewer, user.id, 'orders');
        const size = pageSize(args.first);
        const beforeSeq = decodeCursor(CURSOR_KIND, args.after);
        const rows = await store.pageForUser({ userId: user.id, beforeSeq, limit: size + 1 });
        for (const row of rows) ctx.orders.prime(row.id, row);
        return toConnection(CURSOR_KIND, rows, size, (row) => row.seq);
      },
    },
    Order: {
      __resolveReference: (ref: { id: string }, ctx: OrdersContext) => ctx.orders.load(ref.id),
      user: (order: OrderRecord) => ({ __typename: 'User', id: order.userId }),
      items: async (order: OrderRecord, _: unknown, ctx: OrdersContext) =>
        (await ctx.items.load(order.id)).map((item) => ({
          product: { __typename: 'Product', id: item.productId },
          quantity: item.quantity,
          unitPriceCents: item.unitPriceCents,
        })),
      saga: async (order: OrderRecord, _: unknown, ctx: OrdersContext) => ({
        state: order.sagaState,
        steps: await ctx.steps.load(order.id),
      }),
    },
  };
}
