import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdminServer } from '../../../src/admin/server.js';
import { openPolicy, type PlanManager } from '../../../src/engine/compile.js';
import { EventBus } from '../../../src/events.js';
import { createLogger } from '../../../src/observability/logger.js';

const logger = createLogger({ level: 'silent' });
const TOKEN = 'admin-token-for-tests';

const GOOD = `version: 1
upstreams:
  app: { url: "http://127.0.0.1:9" }
authentication: { apiKeys: {} }
routes:
  - name: health
    match: { path: /healthz }
    public: true
  - name: reports
    match: { methods: [GET, HEAD], path: "/v1/tenants/{tenant}/reports/**" }
`;

let dir: string;
let file: string;
let policy: PlanManager;
const servers: AdminServer[] = [];

async function start(options: { token?: string; policy?: PlanManager } = {}): Promise<AdminServer> {
  const server = new AdminServer({ host: '127.0.0.1', port: 0, logger, ...options });
  await server.listen();
  servers.push(server);
  return server;
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
const json = async (r: Response): Promise<any> => r.json();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-admin-'));
  file = join(dir, 'policy.yaml');
  await writeFile(file, GOOD);
  policy = await openPolicy(file, { watch: false, logger, bus: new EventBus() });
});

afterAll(async () => {
  for (const s of servers) await s.close();
  await policy.close();
  await rm(dir, { recursive: true, force: true });
});

describe('AdminServer', () => {
  it('serves Prometheus metrics with the exposition content type', async () => {
    const admin = await start();
    const res = await fetch(`${admin.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain; version=0.0.4');
    const text = await res.text();
    expect(text).toContain('# TYPE portcullis_requests_total counter');
    // Process metrics under the standard names stock Node dashboards query, prefixed nowhere.
    expect(text).toMatch(/^process_cpu_seconds_total \d/m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds \d/m);
    expect(text).not.toMatch(/process_process|portcullis_process_|portcullis_nodejs_/);
  });

  it('answers /healthz while up, and /readyz only once a policy is loaded and until draining', async () => {
    const admin = await start();
    expect((await fetch(`${admin.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin.url}/readyz`)).status).toBe(503);
    admin.setPolicy(policy);
    const ready = await fetch(`${admin.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await json(ready)).toMatchObject({ status: 'ready', policy: policy.plan.hash });
    admin.setDraining();
    expect((await fetch(`${admin.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${admin.url}/healthz`)).status).toBe(200);
  });

  it('reports what its readiness checks find: 503 when one is not ready, 200 degraded when one only degrades', async () => {
    const admin = await start({ policy });
    let found: { ready: boolean; reason: string } | undefined;
    admin.addReadinessCheck(() => Promise.resolve(found));
    admin.addReadinessCheck(() => Promise.resolve(undefined));
    found = { ready: true, reason: 'slow but serving' };
    const degraded = await fetch(`${admin.url}/readyz`);
    expect(degraded.status).toBe(200);
    expect(await json(degraded)).toEqual({ status: 'degraded', policy: policy.plan.hash, reasons: ['slow but serving'] });
    found = { ready: false, reason: 'cannot serve' };
    const down = await fetch(`${admin.url}/readyz`);
    expect(down.status).toBe(503);
    expect(await json(down)).toEqual({ status: 'not ready', policy: policy.plan.hash, reasons: ['cannot serve'] });
    found = undefined;
    expect(await json(await fetch(`${admin.url}/readyz`))).toEqual({ status: 'ready', policy: policy.plan.hash });
  });

  it('refuses the admin API with 403 and says why when no token is configured', async () => {
    const admin = await start({ policy });
    const res = await fetch(`${admin.url}/admin/policy`, { headers: bearer('anything') });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toBe('application/problem+json');
    expect((await json(res)).detail).toMatch(/disabled until PORTCULLIS_ADMIN_TOKEN is set/);
  });

  it('answers 401 to a missing or wrong token, including one that only shares a prefix', async () => {
    const admin = await start({ token: TOKEN, policy });
    for (const headers of [{}, bearer('nope'), bearer(TOKEN.slice(0, -1)), bearer(`${TOKEN}x`), { authorization: `Basic ${TOKEN}` }]) {
      const res = await fetch(`${admin.url}/admin/policy`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(res.headers.get('content-type')).toBe('application/problem+json');
    }
  });

  it('describes the running policy to a caller with the token', async () => {
    const admin = await start({ token: TOKEN, policy });
    const res = await fetch(`${admin.url}/admin/policy`, { headers: bearer(TOKEN) });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body.hash).toBe(policy.plan.hash);
    expect(new Date(body.loadedAt).getTime()).toBe(policy.plan.loadedAt);
    expect(body.files).toEqual([file]);
    expect(body.routes).toEqual([
      { name: 'health', methods: null, path: '/healthz', public: true },
      { name: 'reports', methods: ['GET', 'HEAD'], path: '/v1/tenants/{tenant}/reports/**', public: false },
    ]);
  });

  it('reloads on POST /admin/reload, and answers 422 with diagnostics while keeping the last good policy', async () => {
    const admin = await start({ token: TOKEN, policy });
    await writeFile(file, GOOD.replace('/healthz', '/health'));
    const ok = await fetch(`${admin.url}/admin/reload`, { method: 'POST', headers: bearer(TOKEN) });
    expect(ok.status).toBe(200);
    const okBody = await json(ok);
    expect(okBody).toEqual({ ok: true, hash: policy.plan.hash });
    expect(policy.plan.routes[0]!.matcher.pattern).toBe('/health');

    await writeFile(file, GOOD.replace('match: { path: /healthz }', 'match: { path: healthz }'));
    const bad = await fetch(`${admin.url}/admin/reload`, { method: 'POST', headers: bearer(TOKEN) });
    expect(bad.status).toBe(422);
    expect(bad.headers.get('content-type')).toBe('application/problem+json');
    const badBody = await json(bad);
    expect(badBody.ok).toBe(false);
    expect(badBody.hash).toBe(okBody.hash);
    expect(badBody.errors.join('\n')).toMatch(/policy\.yaml:\d+:\d+ routes\[0\]\.match\.path: /);
    expect(policy.plan.hash).toBe(okBody.hash);
    await writeFile(file, GOOD);
  });

  it('routes registered endpoints with params, 404s unknown ones and 405s the wrong method', async () => {
    const admin = await start({ token: TOKEN, policy });
    admin.route('GET', '/admin/tenants/:id/usage', (req) => ({ status: 200, body: { tenant: req.params.id, window: req.query.get('window') } }));
    admin.route('POST', '/admin/echo', (req) => ({ status: 201, body: { got: req.body } }));
    const usage = await fetch(`${admin.url}/admin/tenants/ac%20me/usage?window=day`, { headers: bearer(TOKEN) });
    expect(await json(usage)).toEqual({ tenant: 'ac me', window: 'day' });
    const echo = await fetch(`${admin.url}/admin/echo`, { method: 'POST', headers: { ...bearer(TOKEN), 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(echo.status).toBe(201);
    expect(await json(echo)).toEqual({ got: { a: 1 } });
    const badJson = await fetch(`${admin.url}/admin/echo`, { method: 'POST', headers: { ...bearer(TOKEN), 'content-type': 'application/json' }, body: '{nope' });
    expect(badJson.status).toBe(400);
    expect((await json(badJson)).code).toBe('INVALID_JSON');
    const missing = await fetch(`${admin.url}/admin/nothing`, { headers: bearer(TOKEN) });
    expect(missing.status).toBe(404);
    const wrong = await fetch(`${admin.url}/admin/echo`, { headers: bearer(TOKEN) });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    // Unknown admin paths are not revealed to callers without the token.
    expect((await fetch(`${admin.url}/admin/nothing`)).status).toBe(401);
    expect(() => admin.route('GET', '/admin/policy', () => ({ status: 200 }))).toThrow(/already registered/);
    expect(() => admin.route('GET', '/metrics', () => ({ status: 200 }))).toThrow(/built in/);
  });

  it('serves an endpoint registered outside /admin/ without the token, and nothing else there', async () => {
    const admin = await start({ token: TOKEN, policy });
    admin.openRoute('/.well-known/jwks.json', () => ({ status: 200, body: { keys: [] }, headers: { 'cache-control': 'public, max-age=60' } }));
    expect(() => admin.openRoute('/admin/keys', () => ({ status: 200 }))).toThrow(/needs the token/);
    const jwks = await fetch(`${admin.url}/.well-known/jwks.json`);
    expect(jwks.status).toBe(200);
    expect(jwks.headers.get('cache-control')).toBe('public, max-age=60');
    expect(await json(jwks)).toEqual({ keys: [] });
    expect((await fetch(`${admin.url}/.well-known/jwks.json`, { method: 'HEAD' })).status).toBe(200);
    expect((await fetch(`${admin.url}/.well-known/other`)).status).toBe(404);
  });
});

describe('admin problem codes', () => {
  it('mean what a reason code of the same name means, and every status has a code', async () => {
    const { ADMIN_PROBLEMS, adminCodeFor } = await import('../../../src/admin/problem.js');
    const { REASONS } = await import('../../../src/core/reasons.js');
    for (const [code, p] of Object.entries(ADMIN_PROBLEMS)) {
      if (code in REASONS) expect(REASONS[code as keyof typeof REASONS].status, code).toBe(p.status);
    }
    for (const status of [400, 401, 403, 404, 405, 409, 413, 415, 422, 500, 503, 418]) expect(ADMIN_PROBLEMS[adminCodeFor(status)].status === status || status === 418).toBe(true);
  });
});
