/**
 * What the clients subscribe to, through the gateway and directly at the subgraphs (baseline).
 * A subgraph cannot resolve `Product.name` (products owns it), so the direct metrics
 * subscription asks for the product's id: through the gateway, the name costs one entity fetch
 * per event, shared by every client.
 */
const metricsFields = (product: 'name' | 'id') =>
  `totalOrders confirmedOrders cancelledOrders revenueCents topProducts { product { ${product} } unitsSold }`;

export interface SubscriptionSpec {
  /** The graphql-ws subscription id; the client tells events apart by it. */
  id: 'metrics' | 'status';
  query: string;
  operationName: string;
}

export const METRICS_SUBSCRIPTION = (product: 'name' | 'id'): SubscriptionSpec => ({
  id: 'metrics',
  operationName: 'BenchSalesMetrics',
  query: `subscription BenchSalesMetrics { salesMetricsUpdated { ${metricsFields(product)} } }`,
});

/**
 * Without orderId: every order, for an ADMIN. `updatedAt` is the status event's occurredAt (when
 * the saga recorded the change), a second origin for the latency besides placeOrder's return.
 */
export const STATUS_SUBSCRIPTION: SubscriptionSpec = {
  id: 'status',
  operationName: 'BenchOrderStatus',
  query: 'subscription BenchOrderStatus { orderStatusChanged { id status updatedAt } }',
};

/** The figures every client's last salesMetricsUpdated must equal once orders stop. */
export const METRICS_QUERY = (product: 'name' | 'id') =>
  `query BenchSalesMetricsNow { salesMetrics { ${metricsFields(product)} } }`;

export const PLACE_ORDER =
  'mutation BenchPlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }';

export interface MetricsFigures {
  confirmedOrders: number;
}
