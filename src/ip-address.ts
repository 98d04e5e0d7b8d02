// Client addresses in one spelling, and the key a per-IP counter (a `by: ip` bucket, the lockout)
// is kept under. An IPv6 address has many spellings (case, zero compression, leading zeros, an
// IPv4-mapped form) and an end site usually owns a whole /64: keyed per spelling or per address,
// one client would get a fresh counter for every address it rotates through. So IPv6 clients are
// keyed by their network prefix (64 bits unless configured), written the one RFC 5952 way.
// No regex and no allocation for IPv4; IPv6 results are memoised (bounded) because a client keeps
// its address for many requests.

const MAX_MEMO = 4096;

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}

/** Dotted IPv4 at s[from, to) → its 32-bit value, or -1. Leading zeros are refused, as node:net does. */
function parseIpv4(s: string, from: number, to: number): number {
  let value = 0;
  let parts = 0;
  let i = from;
  while (parts < 4) {
    let n = 0;
    const start = i;
    while (i < to && s.charCodeAt(i) >= 48 && s.charCodeAt(i) <= 57) n = n * 10 + (s.charCodeAt(i++) - 48);
    const len = i - start;
    if (len === 0 || len > 3 || n > 255 || (len > 1 && s.charCodeAt(start) === 48)) return -1;
    value = value * 256 + n;
    parts++;
    if (parts < 4) {
      if (s.charCodeAt(i) !== 46 /* . */) return -1;
      i++;
    }
  }
  return i === to ? value : -1;
}

/** An IPv6 address (any spelling; a zone "%…" is ignored) → its eight 16-bit groups, or undefined. */
export function parseIpv6(address: string): Uint16Array | undefined {
  const zone = address.indexOf('%');
  const end = zone === -1 ? address.length : zone;
  const groups = new Uint16Array(8);
  let n = 0;
  let gap = -1;
  let i = 0;
  if (address.charCodeAt(0) === 58 /* : */) {
    if (address.charCodeAt(1) !== 58) return undefined;
    gap = 0;
    i = 2;
    if (i === end) return groups; // "::"
  }
  while (i < end) {
    let j = i;
    let v = 0;
    while (j < end && j - i < 5) {
      const d = hexDigit(address.charCodeAt(j));
      if (d < 0) break;
      v = v * 16 + d;
      j++;
    }
    if (j < end && address.charCodeAt(j) === 46 /* . */) {
      // Embedded IPv4 in the last 32 bits.
      if (n > 6) return undefined;
      const v4 = parseIpv4(address, i, end);
      if (v4 < 0) return undefined;
      groups[n++] = v4 >>> 16;
      groups[n++] = v4 & 0xffff;
      i = end;
      break;
    }
    if (j === i || j - i > 4 || n === 8) return undefined;
    groups[n++] = v;
    i = j;
    if (i === end) break;
    if (address.charCodeAt(i) !== 58) return undefined;
    i++;
    if (address.charCodeAt(i) === 58) {
      if (gap !== -1) return undefined;
      gap = n;
      i++;
      if (i === end) break;
    } else if (i === end) {
      return undefined; // trailing single ":"
    }
  }
  if (gap === -1) return n === 8 ? groups : undefined;
  if (n > 7) return undefined;
  const tail = n - gap;
  groups.copyWithin(8 - tail, gap, n);
  groups.fill(0, gap, 8 - tail);
  return groups;
}

/** RFC 5952 text: lower case, no leading zeros, the longest run (≥ 2) of zero groups as "::". */
export function formatIpv6(groups: Uint16Array): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === bestAt) {
      out += i === 0 ? '::' : ':';
      i += bestLen - 1;
      continue;
    }
    out += groups[i]!.toString(16);
    if (i < 7) out += ':';
  }
  return out;
}

function isMapped(g: Uint16Array): boolean {
  return g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;
}

/**
 * One spelling per address: IPv4 as given (node:net only accepts the plain dotted form), an
 * IPv4-mapped IPv6 address as its IPv4 address, any other IPv6 address in RFC 5952 form. Anything
 * that does not parse is returned unchanged.
 */
export function canonicalIp(ip: string): string {
  if (ip.indexOf(':') === -1) return ip;
  const g = parseIpv6(ip);
  return g === undefined ? ip : isMapped(g) ? `${g[6]! >>> 8}.${g[6]! & 255}.${g[7]! >>> 8}.${g[7]! & 255}` : formatIpv6(g);
}

export const DEFAULT_IPV6_PREFIX = 64;

const memo = new Map<number, Map<string, string>>();

/**
 * The counter key of a client address: an IPv4 address is its own key; an IPv6 address is keyed
 * by its first `ipv6Prefix` bits ("2001:db8:1:2::/64"), or by the whole address at 128. The
 * address may be in any spelling (it is canonicalised first). "" (unknown) stays "".
 */
export function ipKey(ip: string, ipv6Prefix: number = DEFAULT_IPV6_PREFIX): string {
  if (ip.indexOf(':') === -1) return ip;
  let byIp = memo.get(ipv6Prefix);
  if (byIp === undefined) memo.set(ipv6Prefix, (byIp = new Map()));
  let key = byIp.get(ip);
  if (key !== undefined) return key;
  const g = parseIpv6(ip);
  if (g === undefined) key = ip;
  else if (isMapped(g)) key = canonicalIp(ip);
  else if (ipv6Prefix >= 128) key = formatIpv6(g);
  else {
    for (let i = 0; i < 8; i++) {
      const keep = Math.max(0, Math.min(16, ipv6Prefix - i * 16));
      g[i] = keep === 0 ? 0 : g[i]! & ((0xffff << (16 - keep)) & 0xffff);
    }
    key = `${formatIpv6(g)}/${ipv6Prefix}`;
  }
  if (byIp.size >= MAX_MEMO) byIp.clear();
  byIp.set(ip, key);
  return key;
}
