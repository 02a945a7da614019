import { randomUUID } from 'node:crypto';
import { expect } from 'vitest';
import { createUserTokens } from '../../lib/auth/tokens.ts';
import type { EventEnvelope } from '../../lib/messaging/envelope.ts';
import { createOrderStore, type OrderRecord } from '../../subgraphs/orders/src/store.ts';
import { createPaymentStore } from '../../subgraphs/payments/src/store.ts';
import type { GraphQLResponse, TestSystem } from './startTestSystem.ts';

export const ADMIN = { email: 'admin@example.com', password: 'admin' };

export function codesOf(response: GraphQLResponse<unknown>): unknown[] {
  return (response.errors ?? []).map((e) => e.extensions?.['code']);
}

export function expectCode(response: GraphQLResponse<unknown>, code: string) {
  expect(codesOf(response), JSON.stringify(response.errors)).toContain(code);
}

export async function logIn(system: TestSystem, email: string, password: string): Promise<string> {
  const response = await system.graphql<{ logIn: { token: string } }>(
    'mutation($email: String!, $password: String!) { logIn(email: $email, password: $password) { token } }',
    { email, password },
  );
  expect(response.errors).toBeUndefined();
  return response.data!.logIn.token;
}

/**
 * The demo admin's token, minted with the system's own secret instead of through logIn: for
 * tests whose subgraph timeout is set far below what a password hash costs on a busy machine.
 */
export async function mintAdminToken(system: TestSystem): Promise<string> {
  const [admin] = await system.subgraphs.users.db.query<{ id: string }>(
    'SELECT id FROM users WHERE lower(email) = lower($1)',
    [ADMIN.email],
  );
  if (!admin) throw new Error('the demo admin is missing');
  return createUserTokens({ secret: system.secrets.jwtSecret, ttlSeconds: 3_600 }).issue({
    id: admin.id,
    role: 'ADMIN',
  });
}

/** Every order-events envelope from now on, read by a consumer group of its own, appended to `into`. */
export async function recordOrderEvents(
  system: Pick<TestSystem, 'stream'>,
  into: EventEnvelope[],
): Promise<{ stop(): Promise<void> }> {
  return system.stream.subscribe({
    groupId: `order-events-reader-${randomUUID()}`,
    topics: ['order-events'],
    handle: async (message) => {
      into.push(JSON.parse(message.value) as EventEnvelope);
    },
  });
}

export async function signUp(system: TestSystem, name = 'Ada') {
  const email = `${name.toLowerCase()}-${randomUUID().slice(0, 8)}@example.com`;
  const response = await system.graphql<{ signUp: { token: string; user: { id: string; email: string } } }>(
    'mutation($input: SignUpInput!) { signUp(input: $input) { token user { id email } } }',
    { input: { email, name, password: 'correct horse battery' } },
  );
  expect(response.errors).toBeUndefined();
  const { token, user } = response.data!.signUp;
  return { token, id: user.id, email: user.email };
}

export async function createProduct(
  system: TestSystem,
  adminToken: string,
  input: { sku?: string; name?: string; priceCents?: number; stock?: number } = {},
) {
  const response = await system.graphql<{ createProduct: { id: string; priceCents: number; sku: string } }>(
    'mutation($input: CreateProductInput!) { createProduct(input: $input) { id sku priceCents } }',
    {
      input: {
        sku: input.sku ?? `SKU-${randomUUID().slice(0, 8)}`,
        name: input.name ?? 'Widget',
        priceCents: input.priceCents ?? 1_250,
        stock: input.stock ?? 10,
      },
    },
    adminToken,
  );
  expect(response.errors).toBeUndefined();
  return response.data!.createProduct;
}

/**
 * Until the saga lands (placeOrder), orders and their payments are written straight into the
 * orders and payments stores, as those services' own code would.
 */
export async function insertConfirmedOrder(
  system: TestSystem,
  userId: string,
  items: { productId: string; quantity: number; unitPriceCents: number }[],
): Promise<OrderRecord> {
  const at = new Date();
  const order = await createOrderStore(system.subgraphs.orders.db).create({
    userId,
    status: 'CONFIRMED',
    sagaState: 'COMPLETED',
    items,
    steps: ['VALIDATE_USER', 'RESERVE_STOCK', 'CHARGE_PAYMENT', 'CONFIRM_ORDER'].map((name) => ({
      name,
      status: 'SUCCEEDED' as const,
      attempts: 1,
      error: null,
      startedAt: at,
      finishedAt: at,
    })),
  });
  await createPaymentStore(system.subgraphs.payments.db).create({
    orderId: order.id,
    userId,
    amountCents: order.totalCents,
    status: 'CAPTURED',
    attempts: 1,
    refundedCents: 0,
  });
  return order;
}
