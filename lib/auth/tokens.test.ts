import { describe, expect, it } from 'vitest';
import { createServiceCredentials, createUserTokens, InvalidTokenError } from './tokens.ts';

const secret = 'a-test-secret-that-is-long-enough-for-hs256-keys';

describe('user tokens', () => {
  it('a token verified once is still checked for expiry on every later use', async () => {
    let time = Date.now();
    const tokens = createUserTokens({ secret, ttlSeconds: 60, now: () => time });
    const token = await tokens.issue({ id: 'u1', role: 'CUSTOMER' });
    expect(await tokens.verify(token)).toMatchObject({ id: 'u1', role: 'CUSTOMER' });
    time += 59_000;
    expect(await tokens.verify(token)).toMatchObject({ id: 'u1', role: 'CUSTOMER' });
    // Past `exp` (one-second resolution): the remembered verification does not outlive it.
    time += 2_000;
    await expect(tokens.verify(token)).rejects.toMatchObject({ expired: true });
  });

  it('a tampered token is refused, however often the genuine one was verified', async () => {
    const tokens = createUserTokens({ secret, ttlSeconds: 60 });
    const token = await tokens.issue({ id: 'u1', role: 'CUSTOMER' });
    await tokens.verify(token);
    const [header, , signature] = token.split('.');
    const forged = `${header}.${Buffer.from(JSON.stringify({ sub: 'u1', role: 'ADMIN' })).toString('base64url')}.${signature}`;
    await expect(tokens.verify(forged)).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it('a token signed with another secret is refused', async () => {
    const other = await createUserTokens({ secret: `${secret}-other`, ttlSeconds: 60 }).issue({
      id: 'u1',
      role: 'ADMIN',
    });
    await expect(createUserTokens({ secret, ttlSeconds: 60 }).verify(other)).rejects.toBeInstanceOf(
      InvalidTokenError,
    );
  });
});

describe('service credentials', () => {
  it('one credential per viewer is reused, and each verifies to its own caller', async () => {
    const credentials = createServiceCredentials({ secret, ttlSeconds: 60, service: 'gateway' });
    const alice = await credentials.sign({ id: 'alice', role: 'CUSTOMER' });
    expect(await credentials.sign({ id: 'alice', role: 'CUSTOMER' })).toBe(alice);
    const aliceAdmin = await credentials.sign({ id: 'alice', role: 'ADMIN' });
    const anonymous = await credentials.sign(null);
    expect(new Set([alice, aliceAdmin, anonymous]).size).toBe(3);
    expect(await credentials.verify(alice)).toEqual({
      service: 'gateway',
      viewer: { id: 'alice', role: 'CUSTOMER' },
    });
    expect(await credentials.verify(aliceAdmin)).toEqual({
      service: 'gateway',
      viewer: { id: 'alice', role: 'ADMIN' },
    });
    expect(await credentials.verify(anonymous)).toEqual({ service: 'gateway', viewer: null });
  });

  it('a credential is renewed once half its lifetime has passed, so none is used near its expiry', async () => {
    let time = Date.now();
    const credentials = createServiceCredentials({
      secret,
      ttlSeconds: 60,
      service: 'gateway',
      now: () => time,
    });
    const first = await credentials.sign(null);
    time += 29_000;
    expect(await credentials.sign(null)).toBe(first);
    time += 2_000;
    const second = await credentials.sign(null);
    expect(second).not.toBe(first);
    // 61 s after the first was signed: it has expired (one-second resolution), the renewed one has not.
    time += 30_000;
    await expect(credentials.verify(first)).rejects.toMatchObject({ expired: true });
    expect(await credentials.verify(second)).toEqual({ service: 'gateway', viewer: null });
  });
});
