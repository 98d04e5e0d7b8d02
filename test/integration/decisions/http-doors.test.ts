// The HTTP decision doors (/envoy, /forward-auth, /nginx) of a real app on real sockets, with the
// limits in a real Redis: what each door answers, which headers it hands the data plane, and that
// a request is decided exactly as the proxy decides the same request.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { registry } from '../../../src/observability/metrics.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { redisUrl } from '../../helpers/redis.js';

interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** One request on its own connection, headers exactly as given, optionally from another local address. */
function ask(base: string, method: string, path: string, headers: Record<string, string> = {}, localAddress?: string): Promise<Answer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, method, path, headers, agent: false, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const run = Date.now().toString(36);
const dir = mkdtempSync(join(tmpdir(), 'pcs-decisions-'));
const auditFile = join(dir, 'audit.ndjson');
const policy = (store: string, extra = '') => `version: 1
trustedProxies: [127.0.0.1/32]
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
routes:
  - { name: public, match: { path: "/public/**" }, public: true }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
  - { name: admin, match: { path: "/admin/**" }, require: ["admin:*"] }
  - { name: limited, match: { path: "/limited/**" }, public: true, limits: [{ by: ip, rate: 1/h, burst: 2 }] }
  - { name: browser, match: { path: "/browser/**", methods: [GET] }, require: ["api:use"], cors: { origins: ["https://app.example"] } }
${store}${extra}`;

const apps: App[] = [];
async function start(text: string, name: string): Promise<App> {
  writeFileSync(join(dir, `${name}.yaml`), text);
  const app = await startApp({
    policyPath: join(dir, `${name}.yaml`),
    listen: { host: '127.0.0.1', port: 0 },
    decisions: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  apps.push(app);
  return app;
}

let app: App;
let base: string;
beforeAll(async () => {
  const audit = `audit:\n  sinks:\n    - file: { path: ${JSON.stringify(auditFile)}, fsync: always }\n`;
  app = await start(policy(`store: { url: "${redisUrl()}", prefix: "it:${run}:dec:", onError: deny }\n`, audit), 'main');
  base = app.decisionsUrl!;
});
afterAll(async () => {
  for (const a of apps) await a.shutdown();
});

const forward = (method: string, uri: string, extra: Record<string, string> = {}) => ({
  'x-forwarded-method': method,
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'shop.example',
  'x-forwarded-uri': uri,
  'x-forwarded-for': '203.0.113.7',
  ...extra,
});
const nginx = (method: string, uri: string, extra: Record<string, string> = {}) => ({ 'x-original-method': method, 'x-original-uri': uri, host: 'shop.example', ...extra });

/** The same request through the three HTTP doors. */
const doors = {
  'envoy-http': (method: string, uri: string, headers: Record<string, string> = {}) => ask(base, method, `/envoy${uri}`, { host: 'shop.example', ...headers }),
  'forward-auth': (method: string, uri: string, headers: Record<string, string> = {}) => ask(base, 'GET', '/forward-auth', forward(method, uri, headers)),
  nginx: (method: string, uri: string, headers: Record<string, string> = {}) => ask(base, 'GET', '/nginx', nginx(method, uri, headers)),
};

describe('HTTP decision doors', () => {
  it.each(Object.keys(doors) as (keyof typeof doors)[])('%s allows a request with its credentials and hands back the identity headers to set', async (door) => {
    const a = await doors[door]('GET', '/api/reports?x=1', { 'x-api-key': 'acme-secret' });
    expect(a.status).toBe(200);
    expect(a.body).toBe('');
    expect(a.headers['x-auth-subject']).toBe('acme-key');
    expect(a.headers['x-auth-tenant']).toBe('acme');
    expect(a.headers['x-auth-roles']).toBe('user');
    expect(a.headers['x-auth-key-id']).toBe('acme-key');
    if (door === 'envoy-http') {
      const removed = String(a.headers['x-envoy-auth-headers-to-remove']).split(',');
      expect(removed).toEqual(expect.arrayContaining(['x-api-key', 'authorization', 'x-auth-issuer']));
      expect(removed).not.toContain('x-auth-subject');
    }
  });

  it.each(Object.keys(doors) as (keyof typeof doors)[])('%s never hands back identity headers the client sent', async (door) => {
    const a = await doors[door]('GET', '/public/page', { 'x-auth-subject': 'root', 'x-auth-tenant': 'globex', X_Auth_Roles: 'admin' });
    expect(a.status).toBe(200);
    expect(a.headers['x-auth-subject']).toBeUndefined();
    expect(a.headers['x-auth-tenant']).toBeUndefined();
    expect(a.headers['x-auth-roles']).toBeUndefined();
    if (door === 'envoy-http') expect(String(a.headers['x-envoy-auth-headers-to-remove']).split(',')).toEqual(expect.arrayContaining(['x-auth-subject', 'x-auth-tenant', 'x-auth-roles']));
  });

  it.each(Object.keys(doors) as (keyof typeof doors)[])("%s hands back the gateway's own answer to a CORS preflight, without credentials", async (door) => {
    const a = await doors[door]('OPTIONS', '/browser/items', { origin: 'https://app.example', 'access-control-request-method': 'GET' });
    expect(a.status).toBe(204);
    expect(a.body).toBe('');
    expect(a.headers['access-control-allow-origin']).toBe('https://app.example');
    expect(a.headers['x-auth-subject']).toBeUndefined();
    const refused = await doors[door]('OPTIONS', '/browser/items', { origin: 'https://evil.example', 'access-control-request-method': 'GET' });
    expect(refused.status).toBe(403);
    expect(refused.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('answers the real status, problem+json and headers through /envoy and /forward-auth', async () => {
    for (const door of ['envoy-http', 'forward-auth'] as const) {
      const missing = await doors[door]('GET', '/api/reports');
      expect([missing.status, JSON.parse(missing.body).code]).toEqual([401, 'AUTH_MISSING']);
      expect(missing.headers['content-type']).toBe('application/problem+json');
      expect(missing.headers['www-authenticate']).toMatch(/ApiKey|Bearer/);
      const forbidden = await doors[door]('GET', '/admin/users', { 'x-api-key': 'acme-secret' });
      expect([forbidden.status, JSON.parse(forbidden.body).code]).toEqual([403, 'PERMISSION_DENIED']);
      const none = await doors[door]('GET', '/nowhere');
      expect([none.status, JSON.parse(none.body).code]).toEqual([404, 'ROUTE_NOT_FOUND']);
    }
  });

  it('answers nginx with 401 or 403 only, the real status and code in X-Portcullis-Status and -Code', async () => {
    const missing = await doors.nginx('GET', '/api/reports');
    expect([missing.status, missing.headers['x-portcullis-status'], missing.headers['x-portcullis-code']]).toEqual([401, '401', 'AUTH_MISSING']);
    expect(missing.headers['www-authenticate']).toBeDefined();
    const forbidden = await doors.nginx('GET', '/admin/users', { 'x-api-key': 'acme-secret' });
    expect([forbidden.status, forbidden.headers['x-portcullis-status'], forbidden.headers['x-portcullis-code']]).toEqual([403, '403', 'PERMISSION_DENIED']);
    const none = await doors.nginx('GET', '/nowhere');
    expect([none.status, none.headers['x-portcullis-status'], none.headers['x-portcullis-code']]).toEqual([403, '404', 'ROUTE_NOT_FOUND']);
  });

  it('charges the rate limit once per decision, whichever door asks, and keeps Retry-After on the 429 (403 for nginx)', async () => {
    const first = await doors['forward-auth']('GET', '/limited/a');
    expect(first.status).toBe(200);
    expect(first.headers['ratelimit-policy']).toBeDefined();
    expect((await doors['envoy-http']('GET', '/limited/b', { 'x-forwarded-for': '203.0.113.7' })).status).toBe(200);
    const limited = await doors['forward-auth']('GET', '/limited/c');
    expect([limited.status, JSON.parse(limited.body).code]).toEqual([429, 'RATE_LIMITED']);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const viaNginx = await doors.nginx('GET', '/limited/d', { 'x-forwarded-for': '203.0.113.7' });
    expect([viaNginx.status, viaNginx.headers['x-portcullis-status'], viaNginx.headers['x-portcullis-code']]).toEqual([403, '429', 'RATE_LIMITED']);
    expect(Number(viaNginx.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // Another client behind the same data plane has its own bucket: the client is X-Forwarded-For's.
    expect((await doors['forward-auth']('GET', '/limited/e', { 'x-forwarded-for': '198.51.100.9' })).status).toBe(200);
  });

  it('answers 503 STORE_UNAVAILABLE when the limits store is down and onError is deny', async () => {
    const down = await start(policy('store: { url: "redis://127.0.0.1:1", onError: deny, timeout: 50ms }\n'), 'down');
    const a = await ask(down.decisionsUrl!, 'GET', '/forward-auth', forward('GET', '/limited/x'));
    expect([a.status, JSON.parse(a.body).code]).toEqual([503, 'STORE_UNAVAILABLE']);
    const n = await ask(down.decisionsUrl!, 'GET', '/nginx', nginx('GET', '/limited/x'));
    expect([n.status, n.headers['x-portcullis-status'], n.headers['x-portcullis-code']]).toEqual([403, '503', 'STORE_UNAVAILABLE']);
  });

  it('refuses a peer that is not a trusted proxy with 403 IP_DENIED, whatever X-Forwarded-* and X-Original-* it sends', async () => {
    const spoof = { 'x-api-key': 'acme-secret', 'x-forwarded-for': '127.0.0.1' };
    const f = await ask(base, 'GET', '/forward-auth', forward('GET', '/public/x', spoof), '127.0.0.2');
    expect([f.status, JSON.parse(f.body).code]).toEqual([403, 'IP_DENIED']);
    expect(f.headers['x-auth-subject']).toBeUndefined();
    const n = await ask(base, 'GET', '/nginx', nginx('GET', '/public/x', spoof), '127.0.0.2');
    expect([n.status, n.headers['x-portcullis-code']]).toEqual([403, 'IP_DENIED']);
    const e = await ask(base, 'GET', '/envoy/public/x', { host: 'shop.example', ...spoof }, '127.0.0.2');
    expect([e.status, JSON.parse(e.body).code]).toEqual([403, 'IP_DENIED']);
  });

  it.each([['/public/..%2Fapi/reports'], ['/public/%2e%2e/api/reports'], ['/public/../api/reports'], ['/public/..;/api/reports'], ['/public%2F..%2Fapi/reports'], ['/api;x=1/reports']])(
    'decides the bypass attempt %s exactly as the proxy does, through every door',
    async (uri) => {
      const proxied = await ask(app.proxyUrl, 'GET', uri);
      expect(proxied.status).not.toBe(200);
      const expected = JSON.parse(proxied.body).code as string;
      for (const door of ['envoy-http', 'forward-auth'] as const) {
        const a = await doors[door]('GET', uri);
        expect([door, a.status, JSON.parse(a.body).code]).toEqual([door, proxied.status, expected]);
      }
      const n = await doors.nginx('GET', uri);
      expect(n.headers['x-portcullis-code']).toBe(expected);
    },
  );

  it('refuses a forward-auth or nginx request that lacks the original request with 400 BAD_REQUEST', async () => {
    const f = await ask(base, 'GET', '/forward-auth', { 'x-forwarded-method': 'GET' });
    expect([f.status, JSON.parse(f.body).code]).toEqual([400, 'BAD_REQUEST']);
    const n = await ask(base, 'GET', '/nginx', { 'x-original-method': 'GET' });
    expect([n.status, n.headers['x-portcullis-status'], n.headers['x-portcullis-code']]).toEqual([403, '400', 'BAD_REQUEST']);
  });

  it('answers 404 with the door list for any other path', async () => {
    const a = await ask(base, 'GET', '/check');
    expect(a.status).toBe(404);
    expect(JSON.parse(a.body).detail).toContain('/forward-auth');
  });

  it('counts decisions by door', async () => {
    await doors.nginx('GET', '/public/m');
    const text = await registry.metrics();
    expect(text).toMatch(/portcullis_decisions_total\{door="nginx",route="public",status="200",code="OK"\} [1-9]/);
    expect(text).toMatch(/portcullis_decisions_total\{door="forward-auth",route="api",status="401",code="AUTH_MISSING"\} [1-9]/);
    expect(text).toMatch(/portcullis_decision_duration_seconds_count\{door="envoy-http"\} [1-9]/);
  });

  it('records one audit event per decision, via "decision" with the door', async () => {
    await doors['forward-auth']('GET', '/api/audited?q=1', { 'x-api-key': 'acme-secret' });
    await doors.nginx('GET', '/admin/audited');
    let lines: { type: string; request: { path: string; via?: string; door?: string; ip: string } | null; decision: { code: string | null } | null }[] = [];
    for (let i = 0; i < 100; i++) {
      lines = readFileSync(auditFile, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      if (lines.some((l) => l.request?.path === '/admin/audited')) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const ok = lines.filter((l) => l.request?.path === '/api/audited?q=1');
    expect(ok).toHaveLength(1);
    expect(ok[0]!.request).toMatchObject({ via: 'decision', door: 'forward-auth', ip: '203.0.113.7' });
    const denied = lines.filter((l) => l.request?.path === '/admin/audited');
    expect(denied).toHaveLength(1);
    expect(denied[0]!.request).toMatchObject({ via: 'decision', door: 'nginx' });
    expect(denied[0]!.decision!.code).toBe('AUTH_MISSING');
  });

  it('refuses to start a decision listener on a policy with concurrency limits, at the key that asks for it', async () => {
    const text = policy('', 'tenants:\n  tiers:\n    narrow: { concurrency: 2 }\n');
    const err = await start(text, 'concurrency').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyError);
    const d = (err as PolicyError).diagnostics[0]!;
    expect(d.path).toBe('tenants.tiers.narrow.concurrency');
    expect(d.line).toBe(text.split('\n').indexOf('    narrow: { concurrency: 2 }') + 1);
    expect(d.message).toContain('decision listener');
  });
});
