import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createAnalyticsService } from './server.ts';

await runSubgraph('analytics', createAnalyticsService);
