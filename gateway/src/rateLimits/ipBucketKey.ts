import { isIPv4, isIPv6 } from 'node:net';

/**
 * The part of a client address that rate limits key on. IPv4: the address. IPv6: its /64, the
 * smallest block an ISP or cloud hands a single customer (RFC 6177), who may pick any of its
 * 2^64 addresses at will: keyed per address, rotating through them would get a fresh bucket
 * per request and bypass the logIn limit altogether. IPv4-mapped IPv6 (`::ffff:1.2.3.4`, how a
 * dual-stack socket reports an IPv4 client) counts as the IPv4 address. Anything else (no address
 * known) is used as it is.
 */
export function ipBucketKey(address: string): string {
  const ip = address.replace(/%.*$/, ''); // a zone (`fe80::1%eth0`) names an interface, not a host
  if (isIPv4(ip)) return ip;
  if (!isIPv6(ip)) return address;
  const groups = ipv6Groups(ip);
  const mapped = groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff;
  if (mapped) {
    const [high = 0, low = 0] = groups.slice(6);
    return [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
  }
  return `${groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of a valid IPv6 address (`::` expanded, a dotted IPv4 tail converted). */
function ipv6Groups(ip: string): number[] {
  let text = ip.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const parse = (part: string) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  if (tail === undefined) return parse(head);
  const left = parse(head);
  const right = parse(tail);
  return [...left, ...new Array<number>(8 - left.length - right.length).fill(0), ...right];
}
