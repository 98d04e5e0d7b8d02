import { describe, expect, it } from 'vitest';
import { parseCidr, toBlockList } from '../../../src/policy/cidr.js';

describe('parseCidr', () => {
  it.each([
    ['10.0.0.0/8', { address: '10.0.0.0', prefix: 8, family: 'ipv4' }],
    ['192.0.2.7', { address: '192.0.2.7', prefix: 32, family: 'ipv4' }],
    ['::1/128', { address: '::1', prefix: 128, family: 'ipv6' }],
    ['2001:db8::/32', { address: '2001:db8::', prefix: 32, family: 'ipv6' }],
    ['0.0.0.0/0', { address: '0.0.0.0', prefix: 0, family: 'ipv4' }],
  ])('reads %s', (text, cidr) => expect(parseCidr(text)).toEqual(cidr));

  it.each([
    ['10.0.0.0/33', '"10.0.0.0/33": the prefix length must be 0..32'],
    ['::1/129', '"::1/129": the prefix length must be 0..128'],
    ['10.0.0.0/', '"10.0.0.0/": the prefix length must be 0..32'],
    ['10.0.0.0/x', '"10.0.0.0/x": the prefix length must be 0..32'],
    ['10.0.0/8', '"10.0.0/8" is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)'],
    ['localhost', '"localhost" is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)'],
  ])('refuses %s', (text, problem) => expect(parseCidr(text)).toBe(problem));

  it('builds a BlockList that matches addresses inside the blocks only', () => {
    const list = toBlockList(['10.0.0.0/8', '::1/128', '192.0.2.7']);
    expect(list.check('10.1.2.3', 'ipv4')).toBe(true);
    expect(list.check('11.0.0.1', 'ipv4')).toBe(false);
    expect(list.check('192.0.2.7', 'ipv4')).toBe(true);
    expect(list.check('192.0.2.8', 'ipv4')).toBe(false);
    expect(list.check('::1', 'ipv6')).toBe(true);
    expect(list.check('::2', 'ipv6')).toBe(false);
  });
});
