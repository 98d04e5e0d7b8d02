import { describe, expect, it } from 'vitest';
import { TrustedProxies } from '../../src/authn/client-ip.js';
import { canonicalIp, formatIpv6, ipKey, parseIpv6 } from '../../src/ip-address.js';

describe('one spelling per client address', () => {
  it.each([
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0::1', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['0:0:0:0:0:ffff:1.2.3.4', '1.2.3.4'],
    ['::1', '::1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::1'],
    ['1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8'],
    ['1:0:3:4:5:6:7:8', '1:0:3:4:5:6:7:8'],
    ['10.1.2.3', '10.1.2.3'],
  ])('%s is written %s', (spelling, canonical) => {
    expect(canonicalIp(spelling)).toBe(canonical);
  });

  it.each(['1:2:3:4:5:6:7:8:9', '1::2::3', ':1:2', '1:2:', 'g::1', '12345::1', '::ffff:1.2.3', '::ffff:01.2.3.4'])('leaves %s, which is no address, unparsed', (s) => {
    expect(parseIpv6(s)).toBeUndefined();
  });

  it('round-trips every group through parse and format', () => {
    const g = parseIpv6('abcd:ef01:2345:6789:abcd:ef01:2345:6789')!;
    expect(formatIpv6(g)).toBe('abcd:ef01:2345:6789:abcd:ef01:2345:6789');
  });
});

describe('the key a per-IP counter uses', () => {
  it('puts two addresses of one /64 in one bucket', () => {
    expect(ipKey('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(ipKey('2001:db8:1:2:aaaa:bbbb:cccc:dddd')).toBe('2001:db8:1:2::/64');
  });

  it('puts every spelling of one address in one bucket', () => {
    const keys = new Set(['2001:DB8:1:2::1', '2001:0db8:0001:0002:0000:0000:0000:0001', '2001:db8:1:2:0:0:0:1', '2001:db8:1:2::0001'].map((s) => ipKey(s)));
    expect([...keys]).toEqual(['2001:db8:1:2::/64']);
  });

  it('gives different /64s different buckets', () => {
    expect(ipKey('2001:db8:1:2::1')).not.toBe(ipKey('2001:db8:1:3::1'));
  });

  it('keys an IPv4-mapped address as its IPv4 address, and IPv4 per address', () => {
    expect(ipKey('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(ipKey('::ffff:c000:0207')).toBe('192.0.2.7');
    expect(ipKey('192.0.2.7')).toBe('192.0.2.7');
    expect(ipKey('192.0.2.8')).not.toBe(ipKey('192.0.2.7'));
  });

  it('honours a configured prefix, down to the single address at 128', () => {
    expect(ipKey('2001:db8:1:2::1', 48)).toBe('2001:db8:1::/48');
    expect(ipKey('2001:db8:1:2::1', 56)).toBe('2001:db8:1::/56');
    expect(ipKey('2001:db8:1:2ff::1', 56)).toBe('2001:db8:1:200::/56');
    expect(ipKey('2001:db8:1:2::1', 60)).toBe('2001:db8:1::/60');
    expect(ipKey('2001:DB8:1:2::1', 128)).toBe('2001:db8:1:2::1');
    expect(ipKey('2001:db8:1:2::1', 1)).toBe('::/1');
  });

  it('leaves an unknown client ("") as it is', () => {
    expect(ipKey('')).toBe('');
  });
});

describe('the client address behind trusted proxies', () => {
  it('is reported in one spelling, whichever spelling the proxy wrote', () => {
    const trusted = new TrustedProxies(['127.0.0.1/32']);
    expect(trusted.clientIp('127.0.0.1', '2001:DB8:0::1')).toBe('2001:db8::1');
    expect(trusted.clientIp('::ffff:127.0.0.1', '[2001:db8::0001]:443')).toBe('2001:db8::1');
    expect(trusted.clientIp('127.0.0.1', '::ffff:198.51.100.7')).toBe('198.51.100.7');
  });
});
