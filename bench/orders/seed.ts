import { createServiceCredentials } from '../../lib/auth/tokens.ts';
import { bearer, postGraphQL } from '../shared/graphql.ts';

export interface Customer {
  id: string;
  /** Bearer token, for placeOrder through the gateway. */
  token: string;
  /**
   * A service credential for this customer, signed with the run's SERVICE_SECRET exactly as the
   * gateway signs one per request, for placeOrder straight to the orders subgraph.
   */
  credential: string;
}

export interface Product {
  id: string;
  priceCents: number;
}

export interface Seeded {
  adminToken: string;
  products: Product[];
  customers: Customer[];
}

/**
 * Through the public API, as an operator would: the admin creates the products with a stock no
 * run can exhaust (an order short of stock would be CANCELLED, not the path measured), and the
 * customers sign up.
 */
export async function seed(options: {
  gatewayUrl: string;
  adminEmail: string;
  adminPassword: string;
  serviceSecret: string;
  products: number;
  stock: number;
  customers: number;
  runId: string;
}): Promise<Seeded> {
  const { gatewayUrl } = options;
  const { logIn } = await postGraphQL<{ logIn: { token: string } }>(
    gatewayUrl,
    'mutation($email: String!, $password: String!) { logIn(email: $email, password: $password) { token } }',
    { email: options.adminEmail, password: options.adminPassword },
  );
  const products: Product[] = [];
  for (let i = 0; i < options.products; i++) {
    const { createProduct } = await postGraphQL<{ createProduct: Product }>(
      gatewayUrl,
      'mutation($input: CreateProductInput!) { createProduct(input: $input) { id priceCents } }',
      {
        input: {
          sku: `BENCH-${options.runId}-${i}`,
          name: `Bench product ${i}`,
          priceCents: 500 + ((i * 37) % 100) * 25,
          stock: options.stock,
        },
      },
      bearer(logIn.token),
    );
    products.push(createProduct);
  }
  const credentials = createServiceCredentials({
    secret: options.serviceSecret,
    ttlSeconds: 24 * 3_600,
    service: 'gateway',
  });
  const customers: Customer[] = [];
  for (let i = 0; i < options.customers; i++) {
    const { signUp } = await postGraphQL<{ signUp: { token: string; user: { id: string } } }>(
      gatewayUrl,
      'mutation($input: SignUpInput!) { signUp(input: $input) { token user { id } } }',
      {
        input: {
          email: `bench-${options.runId}-${i}@example.com`,
          name: `Bench customer ${i}`,
          password: 'bench password',
        },
      },
    );
    customers.push({
      id: signUp.user.id,
      token: signUp.token,
      credential: await credentials.sign({ id: signUp.user.id, role: 'CUSTOMER' }),
    });
  }
  return { adminToken: logIn.token, products, customers };
}
