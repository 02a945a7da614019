import { startBenchSystem } from '../shared/startBenchSystem.ts';

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

const { graphql, createProducts, subgraphUrls } = await startBenchSystem('bench-heavy-system');
const productIds = await createProducts(PRODUCTS, 10_000);
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

process.stdout.write(
  `${JSON.stringify({ ready: true, subgraphs: subgraphUrls(), userId: signUp.user.id, userToken: signUp.token })}\n`,
);
