import { describe, expect, it } from 'vitest';
import { operationBucketKey } from '../plugins/useRateLimits.ts';
import { ipBucketKey } from './ipBucketKey.ts';

describe('the client address rate limits key on', () => {
  it('is one key for every IPv6 address of a /64, however it is written', () => {
    const sameBlock = [
      '2001:db8:85a3:42::1',
      '2001:db8:85a3:42:ffff:ffff:ffff:ffff',
      '2001:0DB8:85A3:0042:1234:5678:9abc:def0',
      '2001:db8:85a3:42::7%eth0',
      '2001:db8:85a3:42::1.2.3.4',
    ];
    expect(new Set(sameBlock.map(ipBucketKey))).toEqual(new Set(['2001:db8:85a3:42::/64']));
    expect(ipBucketKey('2001:db8:85a3:43::1')).not.toBe(ipBucketKey('2001:db8:85a3:42::1'));
    expect(ipBucketKey('::1')).toBe('0:0:0:0::/64');
  });

  it('is the address itself for IPv4, also when a dual-stack socket reports it IPv4-mapped', () => {
    expect(ipBucketKey('203.0.113.7')).toBe('203.0.113.7');
    expect(ipBucketKey('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(ipBucketKey('::ffff:cb00:7107')).toBe('203.0.113.7');
    expect(ipBucketKey('203.0.113.8')).not.toBe(ipBucketKey('203.0.113.7'));
  });

  it('passes anything that is not an address through', () => {
    expect(ipBucketKey('unknown')).toBe('unknown');
  });

  it('gives anonymous callers rotating through one /64 a single operations bucket', () => {
    expect(operationBucketKey(null, '2001:db8::1')).toBe(operationBucketKey(null, '2001:db8::2'));
    expect(operationBucketKey(null, '2001:db8:0:1::1')).not.toBe(operationBucketKey(null, '2001:db8::1'));
    // A signed-in user's bucket is theirs wherever they call from.
    const viewer = { id: 'u1', role: 'CUSTOMER' as const };
    expect(operationBucketKey(viewer, '2001:db8::1')).toBe(operationBucketKey(viewer, '198.51.100.1'));
  });
});
