// IP addresses and CIDR blocks as policies write them (`10.0.0.0/8`, `::1/128`, `192.0.2.7`):
// checked at compile time, turned into a node:net BlockList once for the request path.
import { BlockList, isIP } from 'node:net';

export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

/** Parses an address or CIDR block; a string describing the problem when it is not one. */
export function parseCidr(value: string): Cidr | string {
  const slash = value.indexOf('/');
  const address = slash === -1 ? value : value.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `"${value}" is not an IP address or CIDR block (e.g. 10.0.0.0/8, ::1/128)`;
  const max = version === 4 ? 32 : 128;
  const prefixText = slash === -1 ? String(max) : value.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return `"${value}": the prefix length must be 0..${max}`;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A BlockList of already-validated addresses/CIDRs (throws on an invalid one: compile checks first). */
export function toBlockList(values: readonly string[]): BlockList {
  const list = new BlockList();
  for (const v of values) {
    const c = parseCidr(v);
    if (typeof c === 'string') throw new Error(c);
    list.addSubnet(c.address, c.prefix, c.family);
  }
  return list;
}
