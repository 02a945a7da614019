import { runSubgraph } from '../../../lib/http/runSubgraph.ts';
import { createUsersService } from './server.ts';

await runSubgraph('users', createUsersService);
