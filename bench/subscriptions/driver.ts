import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { bearer, postGraphQL } from '../shared/graphql.ts';
import { PLACE_ORDER } from './operations.ts';

/**
 * The order flow, in its own process: `count` placeOrder mutations through the gateway at a
 * steady `ratePerSecond` (open loop: each starts on schedule whether or not earlier ones have
 * returned), tok_visa, one unit of one product each, round-robin over `productIds`. Prints one
 * JSON line: each order's id, final status and the wall time its response was read.
 */
export interface DriverOptions {
  url: string;
  token: string;
  productIds: string[];
  ratePerSecond: number;
  count: number;
}

export interface PlacedOrder {
  id: string;
  status: string;
  /** performance.timeOrigin + now() once the response was parsed: a wall clock shared across processes. */
  returnedAt: number;
  ms: number;
}

export interface DriverResult {
  orders: PlacedOrder[];
  errors: string[];
  /** Wall time of the first placeOrder sent and of the last response. */
  startedAt: number;
  endedAt: number;
}

const now = () => performance.timeOrigin + performance.now();

export async function driveOrders(options: DriverOptions): Promise<DriverResult> {
  const orders: PlacedOrder[] = [];
  const errors: string[] = [];
  const intervalMs = 1_000 / options.ratePerSecond;
  const startedAt = now();
  const inFlight: Promise<void>[] = [];
  for (let i = 0; i < options.count; i++) {
    const due = startedAt + i * intervalMs;
    if (due > now()) await sleep(due - now());
    const sent = now();
    inFlight.push(
      postGraphQL<{ placeOrder: { id: string; status: string } }>(
        options.url,
        PLACE_ORDER,
        {
          input: {
            items: [{ productId: options.productIds[i % options.productIds.length]!, quantity: 1 }],
            paymentToken: 'tok_visa',
          },
        },
        bearer(options.token),
      ).then(
        ({ placeOrder }) => {
          const returnedAt = now();
          orders.push({ ...placeOrder, returnedAt, ms: returnedAt - sent });
        },
        (error: unknown) => {
          errors.push(String(error).slice(0, 500));
        },
      ),
    );
  }
  await Promise.all(inFlight);
  return { orders, errors, startedAt, endedAt: now() };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const options = JSON.parse(process.argv[2] ?? '{}') as DriverOptions;
  process.stdout.write(`${JSON.stringify(await driveOrders(options))}\n`);
}
