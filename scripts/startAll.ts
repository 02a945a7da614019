/**
 * npm start: the gateway and every subgraph in one process, on embedded PGlite unless
 * DATABASE_URL is set. Ctrl-C stops everything cleanly.
 */
import { loadConfigOrExit } from '../lib/config.ts';
import { onShutdownSignal } from '../lib/lifecycle.ts';
import { createLogger } from '../lib/logger.ts';
import { createSystem, type System } from './createSystem.ts';

const config = loadConfigOrExit();
const logger = createLogger({ level: config.LOG_LEVEL, service: 'system' });

let system: System | undefined;
onShutdownSignal(async () => system?.stop(), logger);
try {
  system = await createSystem({ config, logger });
} catch (error) {
  logger.fatal({ err: error }, 'failed to start');
  process.exit(1);
}

const root = system.gatewayUrl.replace(/\/graphql$/, '');
const storage = config.DATABASE_URL
  ? 'PostgreSQL (DATABASE_URL)'
  : config.DATA_DIR === ':memory:'
    ? 'embedded PGlite, in memory'
    : `embedded PGlite in ${config.DATA_DIR}/embedded`;
console.log(`
  GraphQL gateway   ${system.gatewayUrl}
  Apollo Sandbox    ${root}/
  Health / ready    ${root}/health  ${root}/ready
  Subgraphs         ${Object.entries(system.subgraphs)
    .map(([name, s]) => `${name} ${s.url}`)
    .join('\n                    ')}
  Storage           ${storage}
${
  config.NODE_ENV === 'production'
    ? ''
    : `  Demo admin        ${config.ADMIN_EMAIL} / ${config.ADMIN_PASSWORD ? '(ADMIN_PASSWORD)' : 'admin'}
                    (mutation { logIn(email: "${config.ADMIN_EMAIL}", password: "…") { token } },
                     then send the header  Authorization: Bearer <token>)
`
}  Ctrl-C to stop.
`);
