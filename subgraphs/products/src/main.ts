import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createProductsService } from './server.ts';

await runSubgraph('products', createProductsService);
