// `store.url` → where the Redis store connects. Sentinel and Cluster URLs name several hosts
// (`redis+cluster://a:7000,b:7001`), which WHATWG URL parsing refuses (a port cannot hold a
// comma), so they are split here; single-server URLs are ioredis's own. Problems are messages for
// the policy compiler, and never repeat the URL: it may carry a password.

interface RedisHost {
  readonly host: string;
  readonly port: number;
}

export type RedisTarget =
  | { readonly kind: 'server'; readonly url: string }
  | { readonly kind: 'cluster'; readonly hosts: readonly RedisHost[]; readonly username: string | undefined; readonly password: string | undefined }
  | { readonly kind: 'sentinel'; readonly hosts: readonly RedisHost[]; readonly name: string; readonly username: string | undefined; readonly password: string | undefined };

const EXPECTED = 'expected redis://host:port, rediss://host:port, redis+sentinel://host:port[,host:port…]/mastername or redis+cluster://host:port[,host:port…]';
const MULTI = /^(redis\+cluster|redis\+sentinel):\/\/(?:([^@/]*)@)?([^/?#@]+)(?:\/([^?#]*))?$/;
const HOST = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::(\d{1,5}))?$/;

/** The target of a store URL, or a problem (never containing the URL). */
export function parseRedisUrl(url: string): RedisTarget | { readonly problem: string } {
  const multi = MULTI.exec(url);
  if (multi === null) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      return { problem: `not a URL: ${EXPECTED}` };
    }
    if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') return { problem: `unsupported scheme "${u.protocol.slice(0, -1)}": ${EXPECTED}` };
    if (u.hostname === '') return { problem: `no host: ${EXPECTED}` };
    return { kind: 'server', url };
  }
  const [, scheme, userinfo, hostList, path] = multi;
  const hosts: RedisHost[] = [];
  for (const h of hostList!.split(',')) {
    const m = HOST.exec(h.trim());
    const port = m?.[3] === undefined ? 6379 : Number(m[3]);
    if (m === null || port < 1 || port > 65535) return { problem: `host ${hosts.length + 1} is not host[:port]: ${EXPECTED}` };
    hosts.push(Object.freeze({ host: m[1] ?? m[2]!, port }));
  }
  const colon = userinfo?.indexOf(':') ?? -1;
  const username = decoded(colon === -1 ? userinfo : userinfo!.slice(0, colon));
  const password = decoded(colon === -1 ? undefined : userinfo!.slice(colon + 1));
  if (username === null || password === null) return { problem: 'the user or password is not valid percent-encoding' };
  if (scheme === 'redis+cluster') {
    if (path !== undefined && path !== '') return { problem: `a cluster URL has no path (Redis Cluster has one database): ${EXPECTED}` };
    return Object.freeze({ kind: 'cluster', hosts: Object.freeze(hosts), username, password });
  }
  const name = path === undefined || path === '' ? 'mymaster' : decoded(path);
  if (name === null || name === undefined) return { problem: 'the master name is not valid percent-encoding' };
  return Object.freeze({ kind: 'sentinel', hosts: Object.freeze(hosts), name, username, password });
}

/** Percent-decoded, undefined when absent or empty, null when not valid percent-encoding. */
function decoded(part: string | undefined): string | undefined | null {
  if (part === undefined || part === '') return undefined;
  try {
    return decodeURIComponent(part);
  } catch {
    return null;
  }
}
