import { loadConfigOrExit } from '../../lib/config.ts';
import { onShutdownSignal } from '../../lib/lifecycle.ts';
import { createLogger } from '../../lib/logger.ts';
import { createSystem } from '../../scripts/createSystem.ts';

/**
 * The heavy-query scenario's backend, in its own process: this project's subgraphs
 * (createSystem, in-memory PGlite and brokers unless the environment says otherwise) seeded
 * through the API with one customer who has 20 confirmed orders of 5 items each. createSystem
 * also starts a gateway; it only seeds and then sits idle while the measured gateways run.
 * Prints one JSON line: the subgraphs' URLs and the customer's id and token.
 */
const ORDERS = 20;
const ITEMS_PER_ORDER = 5;
const PRODUCTS = 10;

const config = loadConfigOrExit();
const logger = createLogger({ level: config.LOG_LEVEL, service: 'bench-heavy-system' });
const system = await createSystem({ config, logger, ephemeralPorts: true });
onShutdownSignal(() => system.stop(), logger);

async function graphql<T>(query: string, variables: Record<string, unknown>, token?: string): Promise<T> {
  const response = await fetch(system.gatewayUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) throw new Error(`seeding failed: ${JSON.stringify(body.errors)}`);
  return body.data;
}

const { logIn } = await graphql<{ logIn: { token: string } }>(
  'mutation($email: String!, $password: String!) { logIn(email: $email, password: $password) { token } }',
  { email: config.ADMIN_EMAIL, password: config.ADMIN_PASSWORD ?? 'admin' },
);
const productIds: string[] = [];
for (let i = 0; i < PRODUCTS; i++) {
  const { createProduct } = await graphql<{ createProduct: { id: string } }>(
    'mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }',
    {
      input: { sku: `BENCH-${i}`, name: `Bench product ${i}`, priceCents: 1_000 + i * 25, stock: 10_000 },
    },
    logIn.token,
  );
  productIds.push(createProduct.id);
}
const { signUp } = await graphql<{ signUp: { token: string; user: { id: string } } }>(
  'mutation($input: SignUpInput!) { signUp(input: $input) { token user { id } } }',
  { input: { email: 'bench-customer@example.com', name: 'Bench Customer', password: 'bench password' } },
);
for (let order = 0; order < ORDERS; order++) {
  const items = Array.from({ length: ITEMS_PER_ORDER }, (_, item) => ({
    productId: productIds[(order + item) % PRODUCTS]!,
    quantity: 1 + item,
  }));
  const { placeOrder } = await graphql<{ placeOrder: { status: string } }>(
    'mutation($input: PlaceOrderInput!) { placeOrder(input: $input) { status } }',
    { input: { items, paymentToken: 'tok_visa' } },
    signUp.token,
  );
  if (placeOrder.status !== 'CONFIRMED') throw new Error(`seed order ended ${placeOrder.status}`);
}

const subgraphs = Object.fromEntries(Object.entries(system.subgraphs).map(([name, s]) => [name, s.url]));
process.stdout.write(
  `${JSON.stringify({ ready: true, subgraphs, userId: signUp.user.id, userToken: signUp.token })}\n`,
);
