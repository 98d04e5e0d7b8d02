// Who the client is, as trust rules see it. The socket peer, unless the peer is a trusted proxy:
// then X-Forwarded-For is walked from the right (the hop our peer added last) past every trusted
// hop; the first untrusted address is the client. Anything left of it was written by the client
// and is never believed. A malformed entry stops the walk at the hop that reported it.
import { type BlockList, isIP } from 'node:net';
import { canonicalIp } from '../ip-address.js';
import { blockListOf, familyOf } from './ip-rules.js';

export class TrustedProxies {
  readonly #list: BlockList | undefined;
  // Clients come back with the same peer address (a keep-alive connection, a load balancer): the
  // last IPv6 spelling and its canonical form, so a repeat costs a string comparison.
  #lastPeer = '';
  #lastCanonical = '';

  constructor(cidrs: readonly string[]) {
    this.#list = cidrs.length > 0 ? blockListOf(cidrs) : undefined;
  }

  trusts(ip: string): boolean {
    if (this.#list === undefined || ip === '') return false;
    return this.#list.check(ip, familyOf(ip));
  }

  /**
   * The client address for a peer and its X-Forwarded-For value(s) (Node joins repeated headers
   * with ", "; an array is accepted too). Returns the address in normalised form (IPv4-mapped
   * IPv6 unwrapped).
   */
  clientIp(peer: string, xff: string | readonly string[] | undefined): string {
    const peerAddress = this.#canonicalPeer(peer);
    if (xff === undefined || this.#list === undefined || !this.trusts(peerAddress)) return peerAddress;
    const value = typeof xff === 'string' ? xff : xff.join(',');
    let current = peerAddress;
    let end = value.length;
    while (end > 0) {
      const comma = value.lastIndexOf(',', end - 1);
      const entry = stripPort(value.slice(comma + 1, end).trim());
      end = comma === -1 ? 0 : comma;
      if (entry === '') continue;
      if (isIP(entry) === 0) return current;
      current = canonicalIp(entry);
      if (!this.trusts(current)) return current;
    }
    return current;
  }

  #canonicalPeer(peer: string): string {
    if (peer.indexOf(':') === -1) return peer;
    if (peer !== this.#lastPeer) {
      this.#lastCanonical = canonicalIp(peer);
      this.#lastPeer = peer;
    }
    return this.#lastCanonical;
  }
}

/** `1.2.3.4:5678` → `1.2.3.4`; `[::1]:80` → `::1`; bare addresses unchanged. */
function stripPort(entry: string): string {
  if (entry.startsWith('[')) {
    const close = entry.indexOf(']');
    return close === -1 ? entry : entry.slice(1, close);
  }
  const colon = entry.indexOf(':');
  if (colon !== -1 && colon === entry.lastIndexOf(':')) return entry.slice(0, colon);
  return entry;
}
