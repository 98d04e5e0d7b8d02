// ipAllow / ipDeny, top level and per route, compiled once into node:net BlockLists. BlockList
// already matches IPv4-mapped IPv6 (::ffff:10.1.2.3, what a dual-stack socket reports) against
// IPv4 rules and the other way round, so one address has one answer whichever way it is written.
import type { BlockList } from 'node:net';
import { parseCidr, toBlockList } from '../policy/cidr.js';

/** A BlockList of CIDRs. Invalid ones are left out: compilePolicy reports them and refuses the policy. */
export function blockListOf(values: readonly string[]): BlockList {
  return toBlockList(values.filter((v) => typeof parseCidr(v) !== 'string'));
}

export function familyOf(ip: string): 'ipv4' | 'ipv6' {
  return ip.includes(':') ? 'ipv6' : 'ipv4';
}

/** One allow/deny pair. Deny wins; a non-empty allow list admits only what it lists. */
export class IpRule {
  readonly #allow: BlockList | undefined;
  readonly #deny: BlockList | undefined;

  constructor(allow: readonly string[], deny: readonly string[]) {
    this.#allow = allow.length > 0 ? blockListOf(allow) : undefined;
    this.#deny = deny.length > 0 ? blockListOf(deny) : undefined;
  }

  get empty(): boolean {
    return this.#allow === undefined && this.#deny === undefined;
  }

  /** true when the address may not pass. An unknown address passes only rule sets without allow. */
  denies(ip: string): boolean {
    if (ip === '') return this.#allow !== undefined;
    const family = familyOf(ip);
    if (this.#deny?.check(ip, family)) return true;
    return this.#allow !== undefined && !this.#allow.check(ip, family);
  }
}
