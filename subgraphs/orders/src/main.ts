import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createOrdersService } from './server.ts';

await runSubgraph('orders', createOrdersService);
