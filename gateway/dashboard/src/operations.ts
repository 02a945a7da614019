/** The operations the page sends, and the shapes they return (API.md is the contract). */

export interface DailyRevenue {
  day: string;
  revenueCents: number;
  orders: number;
}

export interface SalesMetrics {
  totalOrders: number;
  confirmedOrders: number;
  cancelledOrders: number;
  successRate: number;
  revenueCents: number;
  averageOrderValueCents: number;
  revenueByDay: DailyRevenue[];
  topProducts: { product: { id: string; name: string }; unitsSold: number; revenueCents: number }[];
  updatedAt: string;
}

export type OrderStatus = 'PENDING' | 'CONFIRMED' | 'CANCELLED';

export interface OrderChange {
  id: string;
  status: OrderStatus;
  totalCents: number;
  failureReason: string | null;
  updatedAt: string;
  user: { email: string } | null;
}

export const REVENUE_DAYS = 14;

const SALES_METRICS_FIELDS = `
  totalOrders confirmedOrders cancelledOrders successRate revenueCents averageOrderValueCents
  revenueByDay(days: ${REVENUE_DAYS}) { day revenueCents orders }
  topProducts(limit: 5) { product { id name } unitsSold revenueCents }
  updatedAt`;

export const LOG_IN = `mutation DashboardLogIn($email: String!, $password: String!) {
  logIn(email: $email, password: $password) { token user { email role } }
}`;

export const SALES_METRICS = `query DashboardSalesMetrics { salesMetrics { ${SALES_METRICS_FIELDS} } }`;

export const SALES_METRICS_UPDATED = `subscription DashboardSalesMetrics {
  salesMetricsUpdated { ${SALES_METRICS_FIELDS} }
}`;

// No orderId: as ADMIN that is every order's changes (API.md).
export const ORDER_STATUS_CHANGED = `subscription DashboardOrderFeed {
  orderStatusChanged { id status totalCents failureReason updatedAt user { email } }
}`;
