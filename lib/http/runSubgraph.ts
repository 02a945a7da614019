import { resolveSecrets } from '../auth/resolveSecrets.ts';
import { loadConfigOrExit, subgraphPort, type SubgraphName } from '../config.ts';
import { openServiceDatabase } from '../db/openServiceDatabase.ts';
import { onShutdownSignal } from '../lifecycle.ts';
import { createLogger } from '../logger.ts';
import type { SubgraphFactory } from './subgraphDeps.ts';

/** The main of a subgraph started alone (`npm run start:<name>`). */
export async function runSubgraph(name: SubgraphName, factory: SubgraphFactory): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.LOG_LEVEL, service: name });
  const secrets = resolveSecrets(config, logger);
  const db = await openServiceDatabase(config, { schema: name });
  const service = factory({ config, db, logger, secrets });
  onShutdownSignal(() => service.stop(), logger);
  try {
    await service.start({ port: subgraphPort(config, name), host: config.HOST });
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start`);
    await service.stop().catch(() => {});
    process.exit(1);
  }
}
