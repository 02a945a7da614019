import type { RequestSource } from '../shared/load.ts';

/**
 * The placeOrder requests of one round, generated inside the load process (autocannon's
 * setupRequest): every request is a different order, so none is deduplicated by idempotency
 * key; each carries a unique key anyway, as a careful client sends one, which also ties every
 * order in the database to the request that placed it.
 */
export interface OrderRequestsOptions {
  /** `gateway`: a bearer token per customer; `direct`: the customer's signed service credential. */
  auth: 'bearer' | 'credential';
  customers: { token: string; credential: string }[];
  productIds: string[];
  /** Idempotency keys are `<keyPrefix><n>`. */
  keyPrefix: string;
  paymentToken: string;
  /** Seeds the item choice, so every round of every mode asks for the same mix. */
  seed: number;
}

/** What the load process hands back: each placed order, with when its response arrived. */
export interface OrderResponses {
  /** Order ids, statuses and arrival times (ms since the epoch), one entry per successful response. */
  ids: string[];
  statuses: string[];
  atMs: number[];
  /** Failed responses by `extensions.code` (or HTTP status), and one example message each. */
  failures: Record<string, { count: number; example: string }>;
  /** Requests built (every one a distinct idempotency key). */
  built: number;
}

export const PLACE_ORDER =
  'mutation PlaceOrder($input: PlaceOrderInput!) { placeOrder(input: $input) { id status } }';

/** mulberry32: a small, fast, seeded PRNG, so the mix is the same in every round. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

export function createRequestSource(options: OrderRequestsOptions): RequestSource {
  const next = random(options.seed);
  const result: OrderResponses = { ids: [], statuses: [], atMs: [], failures: {}, built: 0 };
  const fail = (key: string, example: string) => {
    const entry = (result.failures[key] ??= { count: 0, example });
    entry.count++;
  };
  return {
    next() {
      const n = result.built++;
      const customer = options.customers[n % options.customers.length]!;
      // One to three different products, one to three units each.
      const lines = 1 + Math.floor(next() * 3);
      const chosen = new Set<string>();
      while (chosen.size < lines) {
        chosen.add(options.productIds[Math.floor(next() * options.productIds.length)]!);
      }
      const items = [...chosen].map((productId) => ({ productId, quantity: 1 + Math.floor(next() * 3) }));
      const headers: Record<string, string> =
        options.auth === 'bearer'
          ? { authorization: `Bearer ${customer.token}` }
          : { 'x-service-credential': customer.credential };
      return {
        headers,
        body: JSON.stringify({
          query: PLACE_ORDER,
          variables: {
            input: { items, paymentToken: options.paymentToken, idempotencyKey: `${options.keyPrefix}${n}` },
          },
        }),
      };
    },
    onResponse(status, body, atMs) {
      let parsed: {
        data?: { placeOrder?: { id: string; status: string } | null } | null;
        errors?: { message?: string; extensions?: { code?: string } }[];
      };
      try {
        parsed = JSON.parse(body) as typeof parsed;
      } catch {
        return fail(`HTTP ${status}`, body.slice(0, 200));
      }
      const [error] = parsed.errors ?? [];
      if (error) return fail(error.extensions?.code ?? `HTTP ${status}`, error.message ?? '');
      const order = parsed.data?.placeOrder;
      if (!order) return fail(`HTTP ${status}`, body.slice(0, 200));
      result.ids.push(order.id);
      result.statuses.push(order.status);
      result.atMs.push(atMs);
    },
    recorded: () => result,
  };
}
