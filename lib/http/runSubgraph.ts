import { resolveSecrets } from '../auth/resolveSecrets.ts';
import { loadConfigOrExit, subgraphPort, type SubgraphName } from '../config.ts';
import { openServiceDatabase } from '../db/openServiceDatabase.ts';
import { exitOnFatal, onShutdownSignal } from '../lifecycle.ts';
import { createLogger } from '../logger.ts';
import { createEventStream } from '../messaging/createEventStream.ts';
import { createWorkQueue } from '../messaging/createWorkQueue.ts';
import { createObservability } from '../observability/createObservability.ts';
import type { SubgraphFactory } from './subgraphDeps.ts';

/** The main of a subgraph started alone (`npm run start:<name>`). */
export async function runSubgraph(name: SubgraphName, factory: SubgraphFactory): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger({ level: config.LOG_LEVEL, service: name });
  const secrets = resolveSecrets(config, logger);
  const db = await openServiceDatabase(config, { schema: `${config.DATABASE_SCHEMA_PREFIX}${name}` });
  const stream = createEventStream(config, logger, name);
  const queue = createWorkQueue(config, logger, {
    connectionName: name,
    onFatal: (error) => exitOnFatal(logger, error),
  });
  const observability = createObservability({ service: name, config });
  const service = factory({ config, db, logger, secrets, stream, queue, observability });
  onShutdownSignal(async () => {
    await service.stop();
    await Promise.all([stream.close(), queue.close()]);
    await observability.shutdown();
  }, logger);
  try {
    await service.start({ port: subgraphPort(config, name), host: config.HOST });
  } catch (error) {
    logger.fatal({ err: error }, `${name} failed to start`);
    await service.stop().catch(() => {});
    process.exit(1);
  }
}
