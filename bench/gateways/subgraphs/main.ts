import { createLogger } from '../../../lib/logger.ts';
import { accounts } from './accounts.ts';
import { createBenchSubgraphServer } from './createBenchSubgraphServer.ts';
import { inventory } from './inventory.ts';
import { productsSubgraph } from './products.ts';
import { reviewsSubgraph } from './reviews.ts';

/** The benchmark's subgraphs in their own process: `PORT=4200 node --import tsx main.ts`. */
const logger = createLogger({ level: 'info', service: 'bench-subgraphs' });
const server = createBenchSubgraphServer([accounts, inventory, productsSubgraph, reviewsSubgraph]);
const port = await server.start(Number(process.env['PORT'] ?? 4200), process.env['HOST'] ?? '127.0.0.1');
logger.info({ port }, 'bench subgraphs ready');
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void server.stop().then(() => process.exit(0)));
}
