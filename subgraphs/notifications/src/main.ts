import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createNotificationsService } from './server.ts';

await runSubgraph('notifications', createNotificationsService);
