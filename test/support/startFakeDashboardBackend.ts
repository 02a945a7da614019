import { randomUUID } from 'node:crypto';
import { EventEmitter, on } from 'node:events';
import { createServer, type Server } from 'node:http';
import express from 'express';
import {
  buildSchema,
  execute,
  graphql,
  GraphQLError,
  parse,
  subscribe,
  validate,
  type GraphQLField,
  type GraphQLObjectType,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { serveDashboard } from '../../gateway/src/dashboard/serveDashboard.ts';
import { listen } from '../../lib/http/listen.ts';
import { createLogger } from '../../lib/logger.ts';

/**
 * A stand-in for the gateway's dashboard surface, to develop and test the page on its own: the
 * real page (serveDashboard), `logIn` and `salesMetrics` over HTTP POST /graphql, and the
 * `salesMetricsUpdated` / `orderStatusChanged` subscriptions over graphql-ws on the same URL,
 * with API.md's types. Its figures are computed from the orders a test records, not canned.
 */
const SDL = /* GraphQL */ `
  enum Role {
    CUSTOMER
    ADMIN
  }
  enum OrderStatus {
    PENDING
    CONFIRMED
    CANCELLED
  }
  type User {
    id: ID!
    email: String!
    role: Role!
  }
  type AuthPayload {
    token: String!
    user: User!
  }
  type Product {
    id: ID!
    name: String!
  }
  type Order {
    id: ID!
    user: User!
    totalCents: Int!
    status: OrderStatus!
    failureReason: String
    updatedAt: String!
  }
  type DailyRevenue {
    day: String!
    revenueCents: Int!
    orders: Int!
  }
  type ProductSales {
    product: Product!
    unitsSold: Int!
    revenueCents: Int!
  }
  type SalesMetrics {
    totalOrders: Int!
    confirmedOrders: Int!
    cancelledOrders: Int!
    successRate: Float!
    revenueCents: Int!
    averageOrderValueCents: Int!
    revenueByDay(days: Int = 7): [DailyRevenue!]!
    topProducts(limit: Int = 5): [ProductSales!]!
    updatedAt: String!
  }
  type Query {
    salesMetrics: SalesMetrics!
  }
  type Mutation {
    logIn(email: String!, password: String!): AuthPayload!
  }
  type Subscription {
    salesMetricsUpdated: SalesMetrics!
    orderStatusChanged(orderId: ID): Order!
  }
`;

export const FAKE_ADMIN = { email: 'admin@example.com', password: 'admin' };
export const FAKE_CUSTOMER = { email: 'ada@example.com', password: 'customer' };

export interface FakeOrder {
  status: 'CONFIRMED' | 'CANCELLED';
  items: { product: string; quantity: number; unitPriceCents: number }[];
  /** When it happened; now by default (older ones fill the revenue-by-day chart). */
  at?: Date;
  failureReason?: string;
}

export interface FakeDashboardBackend {
  /** http://127.0.0.1:<port> */
  readonly origin: string;
  /** Records an order and pushes its status change and the new metrics to subscribers. */
  recordOrder(order: FakeOrder): { id: string; totalCents: number };
  /** What salesMetrics would answer now (for assertions). */
  metrics(): { totalOrders: number; revenueCents: number };
  /** Closes every socket (1001, as a stopping gateway does) and the port. */
  stop(): Promise<void>;
  /** Listens again on the same port, as a restarted gateway would. */
  start(): Promise<void>;
}

interface StoredOrder extends Required<Omit<FakeOrder, 'failureReason'>> {
  id: string;
  totalCents: number;
  failureReason: string | null;
}

type Context = { token: string | undefined };

export async function startFakeDashboardBackend(): Promise<FakeDashboardBackend> {
  const adminToken = `admin-${randomUUID()}`;
  const customerToken = `customer-${randomUUID()}`;
  const orders: StoredOrder[] = [];
  const events = new EventEmitter();
  const logger = createLogger({ level: 'silent', service: 'fake-dashboard-backend' });

  const requireAdmin = (token: string | undefined) => {
    if (token === adminToken) return;
    throw token === customerToken
      ? new GraphQLError('salesMetrics needs the ADMIN role', { extensions: { code: 'FORBIDDEN' } })
      : new GraphQLError('sign in first', { extensions: { code: 'UNAUTHENTICATED' } });
  };

  const totalOf = (order: FakeOrder) =>
    order.items.reduce((sum, i) => sum + i.quantity * i.unitPriceCents, 0);

  function salesMetrics() {
    const confirmed = orders.filter((o) => o.status === 'CONFIRMED');
    const cancelled = orders.length - confirmed.length;
    const revenueCents = confirmed.reduce((sum, o) => sum + o.totalCents, 0);
    return {
      totalOrders: orders.length,
      confirmedOrders: confirmed.length,
      cancelledOrders: cancelled,
      successRate: orders.length === 0 ? 0 : confirmed.length / orders.length,
      revenueCents,
      averageOrderValueCents: confirmed.length === 0 ? 0 : Math.round(revenueCents / confirmed.length),
      revenueByDay: ({ days }: { days: number }) =>
        Array.from({ length: days }, (_, index) => {
          const day = new Date(Date.now() - (days - 1 - index) * 86_400_000).toISOString().slice(0, 10);
          const ofDay = confirmed.filter((o) => o.at.toISOString().slice(0, 10) === day);
          return { day, orders: ofDay.length, revenueCents: ofDay.reduce((sum, o) => sum + o.totalCents, 0) };
        }),
      topProducts: ({ limit }: { limit: number }) => {
        const sales = new Map<string, { unitsSold: number; revenueCents: number }>();
        for (const item of confirmed.flatMap((o) => o.items)) {
          const entry = sales.get(item.product) ?? { unitsSold: 0, revenueCents: 0 };
          entry.unitsSold += item.quantity;
          entry.revenueCents += item.quantity * item.unitPriceCents;
          sales.set(item.product, entry);
        }
        return [...sales]
          .sort(([, a], [, b]) => b.unitsSold - a.unitsSold)
          .slice(0, limit)
          .map(([name, entry]) => ({ product: { id: name, name }, ...entry }));
      },
      updatedAt: new Date().toISOString(),
    };
  }

  const schema = buildSchema(SDL);
  const field = (type: GraphQLObjectType | null | undefined, name: string) =>
    type!.getFields()[name] as GraphQLField<unknown, Context>;
  field(schema.getQueryType(), 'salesMetrics').resolve = (_root, _args, { token }) => {
    requireAdmin(token);
    return salesMetrics();
  };
  field(schema.getMutationType(), 'logIn').resolve = (_root, args: Record<string, unknown>) => {
    const { email, password } = args as { email: string; password: string };
    const account =
      email === FAKE_ADMIN.email && password === FAKE_ADMIN.password
        ? { token: adminToken, role: 'ADMIN' }
        : email === FAKE_CUSTOMER.email && password === FAKE_CUSTOMER.password
          ? { token: customerToken, role: 'CUSTOMER' }
          : undefined;
    if (!account)
      throw new GraphQLError('wrong email or password', { extensions: { code: 'UNAUTHENTICATED' } });
    return { token: account.token, user: { id: randomUUID(), email, role: account.role } };
  };
  const subscription = schema.getSubscriptionType();
  for (const name of ['salesMetricsUpdated', 'orderStatusChanged']) {
    const config = field(subscription, name);
    // Ending the subscription ends this generator, which removes its listener.
    config.subscribe = async function* () {
      for await (const [payload] of on(events, name) as AsyncIterableIterator<[unknown]>)
        yield { [name]: payload };
    };
  }

  const app = express();
  app.use(serveDashboard({ logger, production: false }));
  app.post('/graphql', express.json(), async (req, res) => {
    const body = req.body as { query?: string; variables?: Record<string, unknown> };
    const token = req.headers.authorization?.replace(/^Bearer /, '');
    const result = await graphql({
      schema,
      source: body.query ?? '',
      variableValues: body.variables ?? {},
      contextValue: { token } satisfies Context,
    });
    res.json(result);
  });

  let server: Server | undefined;
  let sockets: WebSocketServer | undefined;
  let port = 0;

  async function start() {
    if (server) return;
    server = createServer(app);
    sockets = new WebSocketServer({ server, path: '/graphql' });
    useServer<Record<string, unknown>, Context>(
      {
        schema,
        // Under vitest this file gets graphql's ESM build while graphql-ws (loaded by Node) gets
        // its CommonJS one: handing over this module's functions keeps one graphql instance.
        parse,
        validate,
        execute,
        subscribe,
        // A bad token closes the socket with 4403 Forbidden, as graphql-ws does when onConnect says no.
        onConnect: (ctx) => ctx.connectionParams?.['authorization'] === `Bearer ${adminToken}`,
        context: () => ({ token: adminToken }),
      },
      sockets,
    );
    port = await listen(server, port, '127.0.0.1');
  }

  async function stop() {
    const [current, currentSockets] = [server, sockets];
    server = undefined;
    sockets = undefined;
    if (!current || !currentSockets) return;
    for (const client of currentSockets.clients) client.close(1001, 'going away');
    await new Promise<void>((resolve) => currentSockets.close(() => resolve()));
    current.closeAllConnections();
    await new Promise<void>((resolve, reject) =>
      current.close((error) => (error ? reject(error) : resolve())),
    );
  }

  await start();
  return {
    get origin() {
      return `http://127.0.0.1:${port}`;
    },
    recordOrder(order) {
      const stored: StoredOrder = {
        id: randomUUID(),
        status: order.status,
        items: order.items,
        at: order.at ?? new Date(),
        totalCents: totalOf(order),
        failureReason: order.failureReason ?? null,
      };
      orders.push(stored);
      events.emit('orderStatusChanged', {
        id: stored.id,
        status: stored.status,
        totalCents: stored.totalCents,
        failureReason: stored.failureReason,
        updatedAt: stored.at.toISOString(),
        user: { id: randomUUID(), email: 'ada@example.com', role: 'CUSTOMER' },
      });
      events.emit('salesMetricsUpdated', salesMetrics());
      return { id: stored.id, totalCents: stored.totalCents };
    },
    metrics: () => {
      const { totalOrders, revenueCents } = salesMetrics();
      return { totalOrders, revenueCents };
    },
    start,
    stop,
  };
}
