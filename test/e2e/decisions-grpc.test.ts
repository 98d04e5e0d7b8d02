// The Envoy ext_authz gRPC door through the built CLI, asked by @grpc/grpc-js with the door's own
// .proto files (Envoy's names and field numbers): allow with identity headers, headers to remove
// and dynamic metadata; every deny with its google.rpc code and the denied_response Envoy relays;
// an untrusted data plane; path bypass attempts decided exactly as the proxy decides them.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { runCli, type Serving, serveCli } from '../helpers/cli.js';
import { checkRequest, type ExtAuthzClient, extAuthzClient } from '../helpers/ext-authz.js';
import { freePort, redisUrl } from '../helpers/redis.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

// Tenants unique to this run: the shared Redis keeps buckets between runs.
const run = Date.now().toString(36);
const ACME = `acme${run}`;
const TINY = `tiny${run}`;
const running: Serving[] = [];
const clients: ExtAuthzClient[] = [];
let dir: string;
let upstream: OkUpstream;

function policy(opts: { store: string; trusted: string }): string {
  return `version: 1
upstreams: { app: { url: "${upstream.url}" } }
trustedProxies: ${opts.trusted}
ipDeny: [198.51.100.0/24]
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: ${ACME}, roles: [analyst] }
      - { id: tiny-key, hash: "${hashApiKey('tiny-secret')}", tenant: ${TINY}, roles: [analyst] }
roles:
  analyst: { permissions: ["reports:read"] }
tenants:
  tiers:
    pro: { rate: 100000/s, burst: 100000 }
    tiny: { rate: 1/m, burst: 1 }
  members: { ${ACME}: pro, ${TINY}: tiny }
routes:
  - { name: public, match: { path: "/v1/public/**" }, public: true }
  - { name: admin, match: { path: "/v1/admin/**" }, require: ["admin:write"] }
  - { name: reports, match: { path: "/v1/reports/**" }, require: ["reports:read"] }
store: { url: "${opts.store}", onError: deny, timeout: 200ms }
`;
}

/** `serve` with the gRPC door on a free port (PORTCULLIS_DECISIONS_GRPC) and a client for it. */
async function serveWithDoor(policyText: string): Promise<{ serving: Serving; client: ExtAuthzClient }> {
  const file = path.join(dir, `policy-${running.length}.yaml`);
  writeFileSync(file, policyText);
  const port = await freePort();
  const serving = await serveCli(file, { PORTCULLIS_DECISIONS_GRPC: `127.0.0.1:${port}` });
  running.push(serving);
  const client = extAuthzClient(`127.0.0.1:${port}`);
  clients.push(client);
  return { serving, client };
}

/** The proxy's status for a raw request target (node:http sends it as written; fetch would normalise it). */
function proxyStatus(base: string, target: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${base}${target}`, { headers }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.path = target;
    req.on('error', reject);
    req.end();
  });
}

let main: { serving: Serving; client: ExtAuthzClient };

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-decisions-grpc-'));
  upstream = await okUpstream();
  main = await serveWithDoor(policy({ store: redisUrl(), trusted: '[127.0.0.1/32, "::1/128"]' }));
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all(running.map((s) => s.stop()));
  await upstream?.close();
});

const KEY = { 'x-api-key': 'acme-secret' };

describe('Envoy ext_authz over gRPC, through the built CLI', () => {
  it('allows with code 0, the identity headers set, credentials and spoofed identity removed, and dynamic metadata', async () => {
    const res = await main.client.check(checkRequest('GET', '/v1/reports/q1?format=csv', { ...KEY, 'x-auth-roles': 'admin', 'x-auth-tenant': 'evil' }));
    expect(res.status).toEqual({ code: 0 });
    expect(res.denied_response).toBeUndefined();
    const set = Object.fromEntries((res.ok_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
    expect(set).toMatchObject({ 'x-auth-subject': 'acme-key', 'x-auth-tenant': ACME, 'x-auth-roles': 'analyst' });
    for (const h of res.ok_response?.headers ?? []) expect(h.append).toEqual({ value: false });
    const removed = res.ok_response?.headers_to_remove ?? [];
    expect(removed).toContain('x-api-key');
    // Whatever identity header the decision does not set is removed, so a client's copy never passes.
    for (const name of removed) expect(Object.keys(set)).not.toContain(name);
    expect(res.dynamic_metadata).toEqual({
      fields: { subject: { stringValue: 'acme-key' }, tenant: { stringValue: ACME }, route: { stringValue: 'reports' } },
    });
  });

  it('allows a public route without credentials', async () => {
    const res = await main.client.check(checkRequest('GET', '/v1/public/hello'));
    expect(res.status.code).toBe(0);
    expect(res.dynamic_metadata).toEqual({ fields: { route: { stringValue: 'public' } } });
  });

  it('denies a missing credential as UNAUTHENTICATED with a 401 problem and WWW-Authenticate', async () => {
    const res = await main.client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.status).toEqual({ code: 16, message: 'AUTH_MISSING' });
    expect(res.denied_response?.status).toEqual({ code: 401 });
    const headers = Object.fromEntries((res.denied_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
    expect(headers['www-authenticate']).toBeTruthy();
    expect(headers['content-type']).toBe('application/problem+json');
    expect(JSON.parse(res.denied_response?.body ?? '')).toMatchObject({ code: 'AUTH_MISSING', status: 401 });
  });

  it('denies a missing permission as PERMISSION_DENIED (403), an unknown route as NOT_FOUND (404), a malformed path as INVALID_ARGUMENT (400)', async () => {
    const forbidden = await main.client.check(checkRequest('GET', '/v1/admin/users', KEY));
    expect(forbidden.status).toEqual({ code: 7, message: 'PERMISSION_DENIED' });
    expect(forbidden.denied_response?.status).toEqual({ code: 403 });
    expect(forbidden.dynamic_metadata?.fields.tenant).toEqual({ stringValue: ACME });
    const missing = await main.client.check(checkRequest('GET', '/nowhere', KEY));
    expect(missing.status).toEqual({ code: 5, message: 'ROUTE_NOT_FOUND' });
    expect(missing.denied_response?.status).toEqual({ code: 404 });
    const bad = await main.client.check(checkRequest('GET', '/v1/reports/a%2Fb', KEY));
    expect(bad.status).toEqual({ code: 3, message: 'BAD_REQUEST' });
    expect(bad.denied_response?.status).toEqual({ code: 400 });
    expect(JSON.parse(bad.denied_response?.body ?? '')).toMatchObject({ code: 'BAD_REQUEST' });
    const empty = await main.client.check({});
    expect(empty.status.code).toBe(3);
    expect(empty.denied_response?.status).toEqual({ code: 400 });
  });

  it('charges the rate limit per decision and denies RESOURCE_EXHAUSTED with 429, Retry-After and RateLimit headers', async () => {
    const tiny = { 'x-api-key': 'tiny-secret' };
    const first = await main.client.check(checkRequest('GET', '/v1/reports/q1', tiny));
    expect(first.status.code).toBe(0);
    const second = await main.client.check(checkRequest('GET', '/v1/reports/q1', tiny));
    expect(second.status).toEqual({ code: 8, message: 'RATE_LIMITED' });
    expect(second.denied_response?.status).toEqual({ code: 429 });
    const headers = Object.fromEntries((second.denied_response?.headers ?? []).map((h) => [h.header.key, h.header.value]));
    expect(Number(headers['retry-after'])).toBeGreaterThan(0);
    expect(headers['ratelimit-policy']).toBeTruthy();
    expect(headers.ratelimit).toMatch(/;r=0;/);
    expect(JSON.parse(second.denied_response?.body ?? '')).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
  });

  it.each([
    ['an encoded slash', '/v1/public/..%2Fadmin/users'],
    ['an encoded dot segment', '/v1/public/%2e%2e/admin/users'],
    ['a plain dot segment', '/v1/public/../admin/users'],
    ['a dot segment with parameters', '/v1/public/..;/admin/users'],
  ])('decides a bypass attempt with %s exactly as the proxy does, never as the public route', async (_what, target) => {
    const res = await main.client.check(checkRequest('GET', target));
    expect(res.status.code).not.toBe(0);
    expect(res.dynamic_metadata?.fields.route).not.toEqual({ stringValue: 'public' });
    expect(res.denied_response?.status.code).toBe(await proxyStatus(main.serving.proxy, target));
  });

  it('decodes exactly once, as the proxy does: a doubly encoded slash stays inside its public segment', async () => {
    const target = '/v1/public/..%252Fadmin/users';
    const res = await main.client.check(checkRequest('GET', target));
    expect(res.status.code).toBe(0);
    expect(res.dynamic_metadata?.fields.route).toEqual({ stringValue: 'public' });
    expect(await proxyStatus(main.serving.proxy, target)).toBe(200);
  });

  it('believes the client address Envoy reports from a trusted data plane: IP rules apply to it', async () => {
    const res = await main.client.check(checkRequest('GET', '/v1/public/hello', {}, { client: '198.51.100.7' }));
    expect(res.status).toEqual({ code: 7, message: 'IP_DENIED' });
    expect((await main.client.check(checkRequest('GET', '/v1/public/hello', {}, { client: '203.0.113.7' }))).status.code).toBe(0);
  });

  it('refuses a data plane that is not a trusted proxy with PERMISSION_DENIED (403 IP_DENIED), whatever client it reports', async () => {
    const untrusted = await serveWithDoor(policy({ store: redisUrl(), trusted: '[10.0.0.0/8]' }));
    const res = await untrusted.client.check(checkRequest('GET', '/v1/public/hello', {}, { client: '10.1.2.3' }));
    expect(res.status).toEqual({ code: 7, message: 'IP_DENIED' });
    expect(res.denied_response?.status).toEqual({ code: 403 });
    expect(JSON.parse(res.denied_response?.body ?? '')).toMatchObject({ code: 'IP_DENIED' });
  }, 60_000);

  it('answers UNAVAILABLE with 503 when the limits store is down and onError is deny', async () => {
    const dead = await serveWithDoor(policy({ store: `redis://127.0.0.1:${await freePort()}`, trusted: '[127.0.0.1/32]' }));
    const res = await dead.client.check(checkRequest('GET', '/v1/reports/q1', KEY));
    expect(res.status).toEqual({ code: 14, message: 'STORE_UNAVAILABLE' });
    expect(res.denied_response?.status).toEqual({ code: 503 });
  }, 60_000);

  it('stops the gRPC listener with the process on SIGTERM', async () => {
    const port = await freePort();
    const file = path.join(dir, 'policy-stop.yaml');
    writeFileSync(file, policy({ store: redisUrl(), trusted: '[127.0.0.1/32]' }));
    const s = await serveCli(file, { PORTCULLIS_DECISIONS_GRPC: `127.0.0.1:${port}` });
    running.push(s);
    const c = extAuthzClient(`127.0.0.1:${port}`);
    clients.push(c);
    expect((await c.check(checkRequest('GET', '/v1/public/x'))).status.code).toBe(0);
    const exited = new Promise<number | null>((resolve) => s.child.once('exit', (code) => resolve(code)));
    s.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    await expect(c.check(checkRequest('GET', '/v1/public/x'))).rejects.toMatchObject({ code: 14 });
  }, 60_000);
});

describe('the --decisions-grpc flag', () => {
  it('refuses a policy that limits concurrency, since no Check says when its request ends', async () => {
    const file = path.join(dir, 'policy-concurrency.yaml');
    writeFileSync(file, policy({ store: redisUrl(), trusted: '[127.0.0.1/32]' }).replace('tiny: { rate: 1/m, burst: 1 }', 'tiny: { rate: 1/m, burst: 1, concurrency: 2 }'));
    const failed = serveCli(file, { PORTCULLIS_DECISIONS_GRPC: `127.0.0.1:${await freePort()}` });
    await expect(failed).rejects.toThrow(/serve exited 1:[\s\S]*tenants\.tiers\.tiny\.concurrency[\s\S]*decision listener/);
  }, 60_000);

  it('refuses an address that is not HOST:PORT before starting anything', async () => {
    const ran = await runCli(['serve', '--policy', 'policies', '--decisions-grpc', 'nonsense']);
    expect(ran.code).toBe(2);
    expect(ran.stderr).toMatch(/--decisions-grpc: expected HOST:PORT/);
  });
});
