import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, createProduct, expectCode, insertConfirmedOrder, logIn, signUp } from './support/fixtures.ts';
import { startObservedGateway } from './support/startObservedGateway.ts';
import { startTestSystem, type TestSystem } from './support/startTestSystem.ts';

let system: TestSystem;
let adminToken: string;

beforeAll(async () => {
  system = await startTestSystem();
  adminToken = await logIn(system, ADMIN.email, ADMIN.password);
});
afterAll(() => system?.stop());

const ORDERS_QUERY = /* GraphQL */ `
  query MyOrders($first: Int, $after: String) {
    me {
      id
      email
      orders(first: $first, after: $after) {
        edges {
          cursor
          node {
            id
            totalCents
            status
            user {
              id
              email
              name
            }
            items {
              quantity
              unitPriceCents
              product {
                id
                name
                priceCents
                stock
                available
              }
            }
            saga {
              state
              steps {
                name
                status
                attempts
              }
            }
            payment {
              id
              status
              amountCents
              attempts
              refundedCents
              order {
                id
                status
              }
            }
          }
        }
        pageInfo {
          hasNextPage
          endCursor
        }
      }
    }
  }
`;

interface OrdersData {
  me: {
    id: string;
    email: string;
    orders: {
      edges: {
        cursor: string;
        node: {
          id: string;
          totalCents: number;
          status: string;
          user: { id: string; email: string; name: string };
          items: { quantity: number; unitPriceCents: number; product: { id: string; name: string } }[];
          saga: { state: string; steps: { name: string; status: string }[] };
          payment: { status: string; amountCents: number; order: { id: string; status: string } } | null;
        };
      }[];
      pageInfo: { hasNextPage: boolean; endCursor: string | null };
    };
  };
}

describe('sign-up and log-in', () => {
  it('a new customer signs up, gets a token and sees themself through `me`', async () => {
    const user = await signUp(system, 'Grace');
    const me = await system.graphql<{ me: { id: string; role: string; name: string; createdAt: string } }>(
      '{ me { id role name createdAt } }',
      {},
      user.token,
    );
    expect(me.errors).toBeUndefined();
    expect(me.data?.me).toMatchObject({ id: user.id, role: 'CUSTOMER', name: 'Grace' });
    expect(new Date(me.data!.me.createdAt).toISOString()).toBe(me.data!.me.createdAt);
  });

  it('logging in with the sign-up password returns a working token; the email is case-insensitive', async () => {
    const user = await signUp(system, 'Linus');
    const token = await logIn(system, user.email.toUpperCase(), 'correct horse battery');
    const me = await system.graphql<{ me: { id: string } }>('{ me { id } }', {}, token);
    expect(me.data?.me.id).toBe(user.id);
  });

  it('a wrong password or unknown email is UNAUTHENTICATED and says nothing about which', async () => {
    const user = await signUp(system, 'Barbara');
    const wrongPassword = await system.graphql(
      'mutation { logIn(email: "' + user.email + '", password: "nope-nope-nope") { token } }',
    );
    const unknownEmail = await system.graphql(
      'mutation { logIn(email: "nobody@example.com", password: "nope-nope-nope") { token } }',
    );
    expectCode(wrongPassword, 'UNAUTHENTICATED');
    expectCode(unknownEmail, 'UNAUTHENTICATED');
    expect(wrongPassword.errors?.[0]?.message).toBe(unknownEmail.errors?.[0]?.message);
  });

  it('`me` is null without a token', async () => {
    const me = await system.graphql('{ me { id } }');
    expect(me.errors).toBeUndefined();
    expect(me.data).toEqual({ me: null });
  });
});

describe('products', () => {
  it('an admin creates a product and restocks it; available follows stock', async () => {
    const product = await createProduct(system, adminToken, { priceCents: 499, stock: 3 });
    const restocked = await system.graphql<{ restockProduct: { stock: number; available: number } }>(
      'mutation($id: ID!) { restockProduct(id: $id, quantity: 7) { stock available } }',
      { id: product.id },
      adminToken,
    );
    expect(restocked.errors).toBeUndefined();
    expect(restocked.data?.restockProduct).toEqual({ stock: 10, available: 10 });
    const read = await system.graphql<{ product: { priceCents: number; stock: number } }>(
      'query($id: ID!) { product(id: $id) { priceCents stock } }',
      { id: product.id },
    );
    expect(read.data?.product).toEqual({ priceCents: 499, stock: 10 });
  });

  it('concurrent restocks all count', async () => {
    const product = await createProduct(system, adminToken, { stock: 0 });
    await Promise.all(
      Array.from({ length: 10 }, () =>
        system.graphql(
          'mutation($id: ID!) { restockProduct(id: $id, quantity: 2) { stock } }',
          { id: product.id },
          adminToken,
        ),
      ),
    );
    const read = await system.graphql<{ product: { stock: number } }>(
      'query($id: ID!) { product(id: $id) { stock } }',
      {
        id: product.id,
      },
    );
    expect(read.data?.product.stock).toBe(20);
  });

  it('products pages forward with cursors, without gaps or repeats, and search narrows them', async () => {
    const tag = `pg${Date.now().toString(36)}`;
    const created = [];
    for (let i = 0; i < 5; i += 1) {
      created.push(
        await createProduct(system, adminToken, { name: `Paged ${tag} ${i}`, sku: `${tag}-${i}` }),
      );
    }
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page: Awaited<
        ReturnType<
          typeof system.graphql<{
            products: {
              edges: { node: { id: string } }[];
              pageInfo: { hasNextPage: boolean; endCursor: string | null };
            };
          }>
        >
      > = await system.graphql(
        'query($after: String, $search: String) { products(first: 2, after: $after, search: $search) { edges { node { id } } pageInfo { hasNextPage endCursor } } }',
        { after, search: tag },
      );
      expect(page.errors).toBeUndefined();
      const { edges, pageInfo } = page.data!.products;
      seen.push(...edges.map((e) => e.node.id));
      pages += 1;
      if (!pageInfo.hasNextPage) break;
      after = pageInfo.endCursor;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(created.map((p) => p.id));
  });

  it('search treats % and _ literally', async () => {
    const all = await system.graphql<{ products: { edges: unknown[] } }>(
      '{ products(first: 100, search: "%") { edges { cursor } } }',
    );
    expect(all.errors).toBeUndefined();
    expect(all.data?.products.edges).toEqual([]);
  });
});

describe('a federated query across users, orders, products and payments', () => {
  it("returns the signed-in user's orders with their items, products, saga and payment", async () => {
    const customer = await signUp(system, 'Margaret');
    const keyboard = await createProduct(system, adminToken, { name: 'Keyboard', priceCents: 8_999 });
    const cable = await createProduct(system, adminToken, { name: 'Cable', priceCents: 999 });
    const first = await insertConfirmedOrder(system, customer.id, [
      { productId: keyboard.id, quantity: 1, unitPriceCents: 8_999 },
      { productId: cable.id, quantity: 2, unitPriceCents: 999 },
    ]);
    const second = await insertConfirmedOrder(system, customer.id, [
      { productId: cable.id, quantity: 1, unitPriceCents: 999 },
    ]);

    const response = await system.graphql<OrdersData>(ORDERS_QUERY, { first: 10 }, customer.token);
    expect(response.errors).toBeUndefined();
    const { me } = response.data!;
    expect(me.email).toBe(customer.email);
    expect(me.orders.edges.map((e) => e.node.id)).toEqual([second.id, first.id]); // newest first
    const node = me.orders.edges[1]!.node;
    expect(node.totalCents).toBe(8_999 + 2 * 999);
    expect(node.status).toBe('CONFIRMED');
    expect(node.user).toEqual({ id: customer.id, email: customer.email, name: 'Margaret' });
    expect(node.items.map((i) => [i.product.name, i.quantity, i.unitPriceCents])).toEqual([
      ['Keyboard', 1, 8_999],
      ['Cable', 2, 999],
    ]);
    expect(node.saga.state).toBe('COMPLETED');
    expect(node.saga.steps.map((s) => s.name)).toEqual([
      'VALIDATE_USER',
      'RESERVE_STOCK',
      'CHARGE_PAYMENT',
      'CONFIRM_ORDER',
    ]);
    expect(node.payment).toMatchObject({
      status: 'CAPTURED',
      amountCents: node.totalCents,
      order: { id: first.id, status: 'CONFIRMED' },
    });
  });

  it('User.orders pages newest first with cursors', async () => {
    const customer = await signUp(system, 'Edsger');
    const product = await createProduct(system, adminToken);
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      ids.push(
        (
          await insertConfirmedOrder(system, customer.id, [
            { productId: product.id, quantity: 1, unitPriceCents: 100 },
          ])
        ).id,
      );
    }
    const page1 = await system.graphql<OrdersData>(ORDERS_QUERY, { first: 2 }, customer.token);
    const page2 = await system.graphql<OrdersData>(
      ORDERS_QUERY,
      { first: 2, after: page1.data!.me.orders.pageInfo.endCursor },
      customer.token,
    );
    expect(page1.data!.me.orders.pageInfo.hasNextPage).toBe(true);
    expect(page2.data!.me.orders.pageInfo.hasNextPage).toBe(false);
    expect([...page1.data!.me.orders.edges, ...page2.data!.me.orders.edges].map((e) => e.node.id)).toEqual(
      ids.reverse(),
    );
  });

  it('the seeded demo data answers the README query for the admin', async () => {
    const response = await system.graphql<OrdersData>(ORDERS_QUERY, { first: 5 }, adminToken);
    expect(response.errors).toBeUndefined();
    const orders = response.data!.me.orders.edges.map((e) => e.node);
    expect(orders.length).toBeGreaterThanOrEqual(2);
    for (const order of orders) {
      expect(order.payment?.amountCents).toBe(order.totalCents);
      expect(order.items.every((i) => i.product.name.length > 0)).toBe(true);
    }
  });

  it('a list of 50 orders fetches their items and products with one query per subgraph (no N+1)', async () => {
    const customer = await signUp(system, 'Barbara');
    const products = [];
    for (let i = 0; i < 5; i += 1) products.push(await createProduct(system, adminToken));
    for (let i = 0; i < 50; i += 1) {
      const product = products[i % products.length]!;
      await insertConfirmedOrder(system, customer.id, [
        { productId: product.id, quantity: 1, unitPriceCents: 100 },
      ]);
    }
    let response: Awaited<ReturnType<typeof system.graphql<OrdersData>>> | undefined;
    const queries = await system.countQueries(async () => {
      response = await system.graphql<OrdersData>(ORDERS_QUERY, { first: 50 }, customer.token);
    });
    expect(response?.errors).toBeUndefined();
    expect(response?.data?.me.orders.edges).toHaveLength(50);
    const perService = (service: string, table: string) =>
      queries.filter((q) => q.service === service && new RegExp(`FROM ${table}\\b`, 'i').test(q.sql)).length;
    expect(perService('products', 'products')).toBe(1);
    expect(perService('orders', 'order_items')).toBe(1);
    expect(perService('orders', 'saga_steps')).toBe(1);
    expect(perService('payments', 'payments')).toBe(1);
    expect(perService('users', 'users')).toBe(2); // `me`, then the orders' `user` entities in one batch
  });

  it('asks products once per distinct product, however many order lines hold it, and answers every line', async () => {
    const customer = await signUp(system, 'Bertha');
    const products: { id: string }[] = [];
    for (let i = 0; i < 3; i += 1)
      products.push(await createProduct(system, adminToken, { name: `Shared ${i}` }));
    for (let i = 0; i < 12; i += 1) {
      const lines = [0, 1, 2].map((p) => ({
        productId: products[(i + p) % 3]!.id,
        quantity: 1,
        unitPriceCents: 100,
      }));
      await insertConfirmedOrder(system, customer.id, lines);
    }
    const observed = await startObservedGateway(system);
    try {
      const response = await fetch(observed.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${customer.token}` },
        body: JSON.stringify({
          query: '{ me { orders(first: 12) { edges { node { items { product { id name } } } } } } }',
        }),
      });
      const body = (await response.json()) as {
        errors?: unknown;
        data: {
          me: { orders: { edges: { node: { items: { product: { id: string; name: string } }[] } }[] } };
        };
      };
      expect(body.errors).toBeUndefined();
      const lines = body.data.me.orders.edges.flatMap((e) => e.node.items);
      expect(lines).toHaveLength(36);
      const nameOf = new Map(products.map((p, i) => [p.id, `Shared ${i}`]));
      for (const { product } of lines) expect(product.name).toBe(nameOf.get(product.id));
      const entityFetches = observed.bodies['products']!.map(
        (b) => JSON.parse(b) as { query: string; variables?: { representations?: { id: string }[] } },
      ).filter((b) => b.query.includes('_entities'));
      expect(entityFetches).toHaveLength(1);
      const sent = entityFetches[0]!.variables!.representations!.map((r) => r.id);
      expect(sent.toSorted()).toEqual(products.map((p) => p.id).toSorted());
    } finally {
      await observed.stop();
    }
  });
});
