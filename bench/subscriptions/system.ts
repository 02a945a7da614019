import { startBenchSystem } from '../shared/startBenchSystem.ts';

/**
 * The subscriptions benchmark's backend, in its own process: this project's subgraphs
 * (createSystem: in-memory PGlite and brokers unless the environment says otherwise) with a few
 * products stocked for the whole run. Prints one JSON line: the subgraphs' URLs, the admin's id
 * and token (salesMetricsUpdated is ADMIN only; orderStatusChanged without orderId gives an
 * ADMIN every order) and the product ids.
 */
const PRODUCTS = 8;
const STOCK = 1_000_000;

const { admin, createProducts, subgraphUrls } = await startBenchSystem('bench-subscriptions-system');
const productIds = await createProducts(PRODUCTS, STOCK);
process.stdout.write(`${JSON.stringify({ ready: true, subgraphs: subgraphUrls(), admin, productIds })}\n`);
