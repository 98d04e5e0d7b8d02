// IPv6 clients through the real gateway, counted in a real Redis. A client that owns a /64 (the
// usual end-site allocation) cannot rotate through fresh `by: ip` buckets or lockout counters, and
// one address written several ways is one client. The client addresses arrive in X-Forwarded-For
// from a trusted proxy (the test's own sockets can only come from loopback).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { type Gateway, startGateway } from '../../helpers/gateway.js';
import { redisUrl } from '../../helpers/redis.js';

const run = Date.now().toString(36);
let g: Gateway;

beforeAll(async () => {
  g = await startGateway(
    (upstream) => `version: 1
upstreams: { app: { url: "${upstream}" } }
trustedProxies: ["127.0.0.1/32", "::1/128"]
authentication:
  apiKeys: { keys: [{ id: good, hash: "${hashApiKey('good-secret-0123456789')}", roles: [user] }] }
  lockout: { failures: 2, window: 1m, duration: 5m }
roles: { user: { permissions: ["api:use"] } }
store: { url: "${redisUrl()}", prefix: "it:${run}:v6:", onError: deny }
routes:
  - { name: per-64, match: { path: /a }, public: true, limits: [{ by: ip, rate: 1/h, burst: 1 }] }
  - { name: per-48, match: { path: /b }, public: true, limits: [{ by: ip, rate: 1/h, burst: 1, ipv6Prefix: 48 }] }
  - { name: per-address, match: { path: /c }, public: true, limits: [{ by: ip, rate: 1/h, burst: 1, ipv6Prefix: 128 }] }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
`,
  );
});

afterAll(async () => {
  await g?.stop();
});

const from = async (path: string, xff: string, extra: string[] = []) => {
  const res = await g.send(`GET ${path} HTTP/1.1`, [`X-Forwarded-For: ${xff}`, ...extra]);
  return res.code ?? String(res.status);
};

describe('by: ip limits for IPv6 clients', () => {
  it('two addresses in one /64 share a bucket; another /64 has its own', async () => {
    expect(await from('/a', '2001:db8:a:1::1')).toBe('200');
    expect(await from('/a', '2001:db8:a:1:ffff:ffff:ffff:ffff')).toBe('RATE_LIMITED');
    expect(await from('/a', '2001:db8:a:2::1')).toBe('200');
  });

  it('every spelling of one address is one client', async () => {
    expect(await from('/a', '2001:db8:b:1::7')).toBe('200');
    for (const spelling of ['2001:DB8:B:1::7', '2001:0db8:000b:0001:0000:0000:0000:0007', '2001:db8:b:1:0:0:0:7', '[2001:db8:b:1::7]:4711']) {
      expect(await from('/a', spelling), spelling).toBe('RATE_LIMITED');
    }
  });

  it('an IPv4-mapped address is its IPv4 client', async () => {
    expect(await from('/a', '192.0.2.77')).toBe('200');
    expect(await from('/a', '::ffff:192.0.2.77')).toBe('RATE_LIMITED');
    expect(await from('/a', '::ffff:c000:024d')).toBe('RATE_LIMITED');
    expect(await from('/a', '192.0.2.78')).toBe('200');
  });

  it('ipv6Prefix widens or narrows the network a bucket is per', async () => {
    expect(await from('/b', '2001:db8:c:1::1')).toBe('200');
    expect(await from('/b', '2001:db8:c:2::1')).toBe('RATE_LIMITED');
    expect(await from('/c', '2001:db8:d:1::1')).toBe('200');
    expect(await from('/c', '2001:db8:d:1::2')).toBe('200');
    expect(await from('/c', '2001:DB8:D:1::2')).toBe('RATE_LIMITED');
  });
});

describe('the lockout for IPv6 clients', () => {
  it('locks out the whole /64 that failed, in any spelling, and no other', async () => {
    for (let i = 0; i < 2; i++) expect(await from('/api/x', `2001:db8:e:1::${i + 1}`, [`X-Api-Key: wrong-${i}-0123456789`])).toBe('AUTH_INVALID');
    // Counting is fire and forget: wait until this replica has learned the lockout.
    const until = Date.now() + 5000;
    let code = '';
    while (Date.now() < until && (code = await from('/api/x', '2001:db8:e:1::99', ['X-Api-Key: good-secret-0123456789'])) !== 'LOCKED_OUT') await new Promise((r) => setTimeout(r, 20));
    expect(code).toBe('LOCKED_OUT');
    expect(await from('/api/x', '2001:DB8:E:1:0:0:0:abc', ['X-Api-Key: good-secret-0123456789'])).toBe('LOCKED_OUT');
    expect(await from('/api/x', '2001:db8:e:2::1', ['X-Api-Key: good-secret-0123456789'])).toBe('200');
  });
});
