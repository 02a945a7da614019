import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';

describe('configuration', () => {
  it('has working defaults for a fresh machine', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      PORT: 4000,
      USERS_PORT: 4001,
      DATA_DIR: '.data',
      NODE_ENV: 'development',
    });
    expect(config.DATABASE_URL).toBeUndefined();
  });

  it('names every bad variable at once', () => {
    const attempt = () => loadConfig({ PORT: 'eighty', DATABASE_URL: 'not a url', ADMIN_EMAIL: 'nope' });
    expect(attempt).toThrow(ConfigError);
    try {
      attempt();
    } catch (error) {
      const message = (error as ConfigError).message;
      expect(message).toMatch(/PORT/);
      expect(message).toMatch(/DATABASE_URL/);
      expect(message).toMatch(/ADMIN_EMAIL/);
    }
  });

  it('refuses to start in production without secrets and an admin password', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      /JWT_SECRET[\s\S]*SERVICE_SECRET[\s\S]*ADMIN_PASSWORD/,
    );
    const secret = 's'.repeat(40);
    expect(
      loadConfig({ NODE_ENV: 'production', JWT_SECRET: secret, SERVICE_SECRET: secret, ADMIN_PASSWORD: 'pw' })
        .NODE_ENV,
    ).toBe('production');
  });

  it('refuses a subgraph timeout that placeOrder would outlast', () => {
    expect(() => loadConfig({ SUBGRAPH_TIMEOUT_MS: '3000', ORDER_SAGA_WAIT_MS: '5000' })).toThrow(
      /SUBGRAPH_TIMEOUT_MS must be greater than ORDER_SAGA_WAIT_MS/,
    );
  });

  it('has rate and operation limits by default, and Redis only when REDIS_URL is set', () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      OPERATION_MAX_DEPTH: 20,
      OPERATION_MAX_ALIASES: 30,
      RATE_LIMIT_AUTH_CAPACITY: 10,
    });
    expect(config.REDIS_URL).toBeUndefined();
    expect(() => loadConfig({ REDIS_URL: 'http://nope' })).toThrow(/REDIS_URL/);
  });

  it('rejects a short secret', () => {
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET must be at least 32 characters/);
  });

  it('treats empty variables as unset', () => {
    expect(loadConfig({ DATABASE_URL: '' }).DATABASE_URL).toBeUndefined();
  });
});
