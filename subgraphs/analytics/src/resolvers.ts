import { requireAdmin } from '../../../lib/auth/authorize.ts';
import type { ServiceCaller, Viewer } from '../../../lib/auth/tokens.ts';
import { dateTimeScalar } from '../../../lib/graphql/dateTimeScalar.ts';
import { badUserInput } from '../../../lib/errors.ts';
import type { MetricsFeed } from './createMetricsFeed.ts';
import {
  revenueByDay,
  REVENUE_DAYS_MAX,
  TOP_PRODUCTS_MAX,
  type AnalyticsStore,
  type MetricsSnapshot,
} from './store.ts';

export interface AnalyticsContext {
  viewer: Viewer | null;
}

export const createAnalyticsContext = (caller: ServiceCaller): AnalyticsContext => ({
  viewer: caller.viewer,
});

function checkRange(name: string, value: number, max: number): number {
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw badUserInput(`"${name}" must be between 1 and ${max}`, { argumentName: name });
  }
  return value;
}

export function createAnalyticsResolvers({ store, feed }: { store: AnalyticsStore; feed: MetricsFeed }) {
  return {
    DateTime: dateTimeScalar,
    Query: {
      salesMetrics: (_: unknown, __: unknown, ctx: AnalyticsContext) => {
        requireAdmin(ctx.viewer);
        return store.snapshot();
      },
    },
    Subscription: {
      salesMetricsUpdated: {
        subscribe: (_: unknown, __: unknown, ctx: AnalyticsContext) => {
          requireAdmin(ctx.viewer);
          return feed.subscribe();
        },
        resolve: (snapshot: MetricsSnapshot) => snapshot,
      },
    },
    SalesMetrics: {
      successRate: (m: MetricsSnapshot) => {
        const ended = m.confirmedOrders + m.cancelledOrders;
        return ended === 0 ? 0 : m.confirmedOrders / ended;
      },
      averageOrderValueCents: (m: MetricsSnapshot) =>
        m.confirmedOrders === 0 ? 0 : Math.round(m.revenueCents / m.confirmedOrders),
      revenueByDay: (m: MetricsSnapshot, { days }: { days: number }) =>
        revenueByDay(m, checkRange('days', days, REVENUE_DAYS_MAX)),
      topProducts: (m: MetricsSnapshot, { limit }: { limit: number }) =>
        m.products.slice(0, checkRange('limit', limit, TOP_PRODUCTS_MAX)).map((p) => ({
          product: { __typename: 'Product', id: p.productId },
          unitsSold: p.unitsSold,
          revenueCents: p.revenueCents,
        })),
    },
  };
}
