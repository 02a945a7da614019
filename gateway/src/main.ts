import { resolveSecrets } from '../../lib/auth/resolveSecrets.ts';
import { loadConfigOrExit } from '../../lib/config.ts';
import { onShutdownSignal } from '../../lib/lifecycle.ts';
import { createLogger } from '../../lib/logger.ts';
import { createGateway } from './server.ts';

const config = loadConfigOrExit();
const logger = createLogger({ level: config.LOG_LEVEL, service: 'gateway' });
const gateway = createGateway({ config, logger, secrets: resolveSecrets(config, logger) });
onShutdownSignal(() => gateway.stop(), logger);
try {
  await gateway.start({ port: config.PORT, host: config.HOST });
} catch (error) {
  logger.fatal({ err: error }, 'gateway failed to start');
  await gateway.stop().catch(() => {});
  process.exit(1);
}
