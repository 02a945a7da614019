import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createPaymentsService } from './server.ts';

await runSubgraph('payments', createPaymentsService);
