import { loadConfigOrExit, type Config } from '../../lib/config.ts';
import { onShutdownSignal } from '../../lib/lifecycle.ts';
import { createLogger } from '../../lib/logger.ts';
import { createSystem, type System } from '../../scripts/createSystem.ts';
import { bearer, postGraphQL } from './graphql.ts';

export interface BenchSystem {
  config: Config;
  system: System;
  /** An operation through the system's own gateway (seeding), as `token`'s user when given. */
  graphql: <T>(query: string, variables: Record<string, unknown>, token?: string) => Promise<T>;
  admin: { id: string; token: string };
  /** Creates `count` products named `Bench product <i>`, each with `stock` units; their ids. */
  createProducts: (count: number, stock: number) => Promise<string[]>;
  /** The subgraphs' URLs, by name, for a gateway in another process. */
  subgraphUrls: () => Record<string, string>;
}

/**
 * A benchmark backend's start, in its own process: this project's system (createSystem on port 0
 * everywhere; in-memory PGlite and brokers unless the environment says otherwise), stopped on
 * SIGTERM, with the admin logged in. createSystem also starts a gateway: the backend seeds
 * through it, then it sits idle while the gateway under test runs in its own process.
 */
export async function startBenchSystem(service: string): Promise<BenchSystem> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.LOG_LEVEL, service });
  const system = await createSystem({ config, logger, ephemeralPorts: true });
  onShutdownSignal(() => system.stop(), logger);
  const graphql = <T>(query: string, variables: Record<string, unknown>, token?: string) =>
    postGraphQL<T>(system.gatewayUrl, query, variables, token ? bearer(token) : {});
  const { logIn } = await graphql<{ logIn: { token: string; user: { id: string } } }>(
    'mutation($email: String!, $password: String!) { logIn(email: $email, password: $password) { token user { id } } }',
    { email: config.ADMIN_EMAIL, password: config.ADMIN_PASSWORD ?? 'admin' },
  );
  const admin = { id: logIn.user.id, token: logIn.token };
  return {
    config,
    system,
    graphql,
    admin,
    async createProducts(count, stock) {
      const ids: string[] = [];
      for (let i = 0; i < count; i++) {
        const { createProduct } = await graphql<{ createProduct: { id: string } }>(
          'mutation($input: CreateProductInput!) { createProduct(input: $input) { id } }',
          { input: { sku: `BENCH-${i}`, name: `Bench product ${i}`, priceCents: 1_000 + i * 25, stock } },
          admin.token,
        );
        ids.push(createProduct.id);
      }
      return ids;
    },
    subgraphUrls: () =>
      Object.fromEntries(Object.entries(system.subgraphs).map(([name, s]) => [name, s.url])),
  };
}
