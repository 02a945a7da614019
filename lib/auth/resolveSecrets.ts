import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';

export interface Secrets {
  jwtSecret: string;
  serviceSecret: string;
}

/**
 * Secrets come from config. Outside production a missing secret is generated once and kept in
 * DATA_DIR, so services started in separate processes (npm run start:<name>) still trust each
 * other and users' tokens survive a restart. Production never gets here without both set
 * (configSchema refuses to start).
 */
export function resolveSecrets(config: Config, logger?: Logger): Secrets {
  if (config.JWT_SECRET && config.SERVICE_SECRET) {
    return { jwtSecret: config.JWT_SECRET, serviceSecret: config.SERVICE_SECRET };
  }
  if (config.NODE_ENV === 'production') throw new Error('JWT_SECRET and SERVICE_SECRET are required');
  const generated = config.DATA_DIR === ':memory:' ? freshSecrets() : persistedDevSecrets(config.DATA_DIR);
  logger?.warn('using generated development secrets; set JWT_SECRET and SERVICE_SECRET for real use');
  return {
    jwtSecret: config.JWT_SECRET ?? generated.jwtSecret,
    serviceSecret: config.SERVICE_SECRET ?? generated.serviceSecret,
  };
}

function freshSecrets(): Secrets {
  return { jwtSecret: randomBytes(48).toString('base64'), serviceSecret: randomBytes(48).toString('base64') };
}

function persistedDevSecrets(dataDir: string): Secrets {
  const file = join(dataDir, 'dev-secrets.json');
  try {
    const stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<Secrets>;
    if (stored.jwtSecret && stored.serviceSecret) return stored as Secrets;
  } catch {
    // missing or unreadable: generate below
  }
  const secrets = freshSecrets();
  mkdirSync(dataDir, { recursive: true });
  // 'wx' loses the race gracefully when two processes start at once: the loser reads the winner's.
  try {
    writeFileSync(file, JSON.stringify(secrets), { mode: 0o600, flag: 'wx' });
    return secrets;
  } catch {
    return JSON.parse(readFileSync(file, 'utf8')) as Secrets;
  }
}
