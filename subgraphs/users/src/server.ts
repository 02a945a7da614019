import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse } from 'graphql';
import { createUserTokens, Role } from '../../../lib/auth/tokens.ts';
import { outboxMigrations } from '../../../lib/outbox/appendEvent.ts';
import { createSubgraphService, type Service } from '../../../lib/http/createSubgraphService.ts';
import { outboxRelayFor, serviceCredentialsFor, type SubgraphDeps } from '../../../lib/http/subgraphDeps.ts';
import { DEMO_ADMIN_ID } from '../../../lib/demo.ts';
import { hashPassword } from './passwords.ts';
import { createUsersContext, createUsersResolvers } from './resolvers.ts';
import { createUserStore, DuplicateEmailError } from './store.ts';

const typeDefs = parse(readFileSync(new URL('./schema.graphql', import.meta.url), 'utf8'));

/** Users: accounts, password log-in and the JWTs the gateway verifies. Built, not started. */
export function createUsersService(deps: SubgraphDeps): Service {
  const { config, db, logger, secrets, stream } = deps;
  const store = createUserStore(db);
  // Woken by every commit that appends events here; the poll only finds other replicas' events.
  const relay = outboxRelayFor(deps);
  const production = config.NODE_ENV === 'production';
  const userTokens = createUserTokens({ secret: secrets.jwtSecret, ttlSeconds: config.JWT_TTL_SECONDS });

  /**
   * Without an admin nobody could create products, so an empty database gets one in every
   * environment: from ADMIN_EMAIL / ADMIN_PASSWORD (required in production, `admin` otherwise).
   */
  async function ensureAdmin() {
    if (await store.hasAdmin()) return;
    try {
      await store.create({
        id: production ? undefined : DEMO_ADMIN_ID,
        email: config.ADMIN_EMAIL.toLowerCase(),
        name: 'Admin',
        role: Role.ADMIN,
        passwordHash: await hashPassword(config.ADMIN_PASSWORD ?? 'admin'),
      });
      logger.info({ email: config.ADMIN_EMAIL }, 'created the admin account');
    } catch (error) {
      // Another replica won the race, or a customer already took the email: nothing to do.
      if (!(error instanceof DuplicateEmailError)) throw error;
      logger.warn({ email: config.ADMIN_EMAIL }, 'admin email already taken; no admin account created');
    }
  }

  return createSubgraphService({
    name: 'users',
    typeDefs,
    resolvers: createUsersResolvers({ store, userTokens, onEventsAppended: () => relay.notify() }),
    db,
    migrationsDir: fileURLToPath(new URL('../migrations', import.meta.url)),
    extraMigrations: [outboxMigrations],
    credentials: serviceCredentialsFor('users', deps),
    logger,
    observability: deps.observability,
    production,
    seed: ensureAdmin,
    onStart: () => relay.start(),
    onStop: () => relay.stop(),
    readiness: { eventStream: () => stream.health() },
    createContext: (caller) => createUsersContext(store, caller),
  });
}
