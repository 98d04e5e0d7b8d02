// API key lifecycle through the admin API on two replicas sharing a real Redis: rotation with a
// grace period, last use, and per-key limits on dynamic and static keys.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { requireBuiltCli, runCli } from '../../helpers/cli.js';
import { redisUrl } from '../../helpers/redis.js';
import { type OkUpstream, okUpstream } from '../../helpers/upstream.js';

const TOKEN = 'test-admin-token-0123456789';
const run = Date.now().toString(36);
let upstream: OkUpstream;
const apps: App[] = [];
let a: App;
let b: App;

const policy = () => `version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: quota-key-${run}, hash: "${hashApiKey(`quota-${run}`)}", tenant: acme-${run}, roles: [user], limits: { quota: 2/day } }
      - { id: free-key-${run}, hash: "${hashApiKey(`free-${run}`)}", tenant: acme-${run}, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { big: { rate: 1000/s, burst: 1000 } }
  default: big
store: { url: "${redisUrl()}", prefix: "it:${run}:" }
routes:
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
`;

async function start(text: string): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-key-life-'));
  writeFileSync(join(dir, 'p.yaml'), text);
  const app = await startApp({
    policyPath: join(dir, 'p.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    adminToken: TOKEN,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  apps.push(app);
  return app;
}

const call = async (app: App, key: string) => {
  const res = await request(`${app.proxyUrl}/api/x`, { headers: { 'x-api-key': key } });
  const text = await res.body.text();
  return { status: res.statusCode, code: res.statusCode === 200 ? undefined : (JSON.parse(text) as { code: string }).code, headers: res.headers };
};
const admin = async (app: App, method: 'GET' | 'POST', path: string, body?: unknown) => {
  const res = await request(`${app.adminUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: (text ? JSON.parse(text) : undefined) as any };
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const listed = async (app: App, id: string): Promise<any> => (await admin(app, 'GET', `/admin/keys?tenant=acme-${run}`)).json.keys.find((k: { id: string }) => k.id === id);

beforeAll(async () => {
  upstream = await okUpstream();
  a = await start(policy());
  b = await start(policy());
});

afterAll(async () => {
  for (const app of apps) await app.shutdown();
  await upstream.close();
});

describe('key rotation', () => {
  it('issues a new key for the same identity; both work on every replica during the grace, then only the new one', async () => {
    const created = await admin(a, 'POST', '/admin/keys', { tenant: `acme-${run}`, roles: ['user'], id: `rot-${run}`, subject: 'svc-billing', limits: { rate: '100/s' } });
    expect(created.status).toBe(201);
    const oldKey = created.json.key as string;
    expect((await call(b, oldKey)).status).toBe(200);

    const rotated = await admin(a, 'POST', `/admin/keys/rot-${run}/rotate`, { grace: '1500ms' });
    expect(rotated.status).toBe(201);
    const newKey = rotated.json.key as string;
    expect(newKey).not.toBe(oldKey);
    expect(rotated.json).toMatchObject({ tenant: `acme-${run}`, subject: 'svc-billing', roles: ['user'], limits: { rate: '100/s' }, rotatedFrom: `rot-${run}` });
    expect(rotated.json.id).toMatch(new RegExp(`^rot-${run}-r[0-9a-f]{8}$`));
    expect(Date.parse(rotated.json.previous.expires)).toBeGreaterThan(Date.now());

    // Overlap: both keys, on both replicas (b heard of the change through the store).
    await sleep(200);
    for (const app of [a, b]) {
      expect((await call(app, oldKey)).status).toBe(200);
      expect((await call(app, newKey)).status).toBe(200);
    }
    expect(await listed(a, `rot-${run}`)).toMatchObject({ status: 'active', rotatedTo: rotated.json.id });

    // Grace over: the old key is refused as expired, the new one goes on.
    await sleep(1_600);
    for (const app of [a, b]) {
      expect(await call(app, oldKey)).toMatchObject({ status: 401, code: 'AUTH_INVALID' });
      expect((await call(app, newKey)).status).toBe(200);
    }
    expect(await listed(b, `rot-${run}`)).toMatchObject({ status: 'expired' });
    // A rotation of the rotated key keeps the id from growing.
    const again = await admin(a, 'POST', `/admin/keys/${rotated.json.id}/rotate`, {});
    expect(again.json.id).toMatch(new RegExp(`^rot-${run}-r[0-9a-f]{8}$`));
    // No grace named: 24 hours.
    expect(Date.parse(again.json.previous.expires) - Date.now()).toBeGreaterThan(23 * 3_600_000);
  });

  it('refuses to rotate a static key (it lives in the policy) and an unknown one', async () => {
    const s = await admin(a, 'POST', `/admin/keys/free-key-${run}/rotate`, {});
    expect(s.status).toBe(409);
    expect(s.json.code).toBe('KEY_IS_STATIC');
    expect((await admin(a, 'POST', `/admin/keys/nope-${run}/rotate`, {})).status).toBe(404);
    expect((await admin(a, 'POST', `/admin/keys/free-key-${run}/rotate`, { grace: 'soon' })).status).toBe(400);
  });
});

describe('last use', () => {
  it('records when a key was last used, written at most once a minute per key', async () => {
    const created = await admin(a, 'POST', '/admin/keys', { tenant: `acme-${run}`, roles: ['user'], id: `used-${run}` });
    expect((await listed(a, `used-${run}`)).lastUsed).toBeNull();
    const before = Date.now();
    expect((await call(a, created.json.key)).status).toBe(200);
    await sleep(1_300);
    const first = (await listed(b, `used-${run}`)).lastUsed as string;
    expect(Date.parse(first)).toBeGreaterThanOrEqual(before - 5);
    // Used again within the minute: not written again.
    expect((await call(a, created.json.key)).status).toBe(200);
    await sleep(1_300);
    expect((await listed(b, `used-${run}`)).lastUsed).toBe(first);
    // Static keys have a last use too.
    expect((await call(a, `free-${run}`)).status).toBe(200);
    await sleep(1_300);
    expect((await listed(a, `free-key-${run}`)).lastUsed).not.toBeNull();
  });
});

describe('per-key limits', () => {
  it("a dynamic key's rate applies to that key alone, across replicas, with its RateLimit headers", async () => {
    const limited = await admin(a, 'POST', '/admin/keys', { tenant: `acme-${run}`, roles: ['user'], id: `slow-${run}`, limits: { rate: '1/m', burst: 2 } });
    expect(limited.status).toBe(201);
    const k = limited.json.key as string;
    const r1 = await call(a, k);
    expect(r1.status).toBe(200);
    expect(r1.headers['ratelimit-policy']).toContain('"key";q=2;w=120');
    expect((await call(b, k)).status).toBe(200);
    const third = await call(a, k);
    expect(third).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
    expect(third.headers.ratelimit).toMatch(/^"key";r=0;t=\d+$/);
    // The tenant's other keys are not held back.
    expect((await call(b, `free-${run}`)).status).toBe(200);
    expect((await listed(a, `slow-${run}`)).limits).toEqual({ rate: '1/m', burst: 2 });
  });

  it("a static key's quota from the policy refuses with QUOTA_EXCEEDED past it", async () => {
    expect((await call(a, `quota-${run}`)).status).toBe(200);
    expect((await call(b, `quota-${run}`)).status).toBe(200);
    expect(await call(a, `quota-${run}`)).toMatchObject({ status: 429, code: 'QUOTA_EXCEEDED' });
    expect((await call(a, `free-${run}`)).status).toBe(200);
    expect((await listed(a, `quota-key-${run}`)).limits).toEqual({ quota: '2/day' });
  });

  it('a key limits its requests even where no tier or route limits anything (embedded store)', async () => {
    const solo = await start(`version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: solo, hash: "${hashApiKey('solo-secret')}", roles: [user], limits: { rate: 1/h, burst: 1 } }
roles: { user: { permissions: ["api:use"] } }
routes:
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
`);
    expect((await call(solo, 'solo-secret')).status).toBe(200);
    expect(await call(solo, 'solo-secret')).toMatchObject({ status: 429, code: 'RATE_LIMITED' });
  });

  it('refuses a dynamic key with malformed limits', async () => {
    const bad = await admin(a, 'POST', '/admin/keys', { tenant: `acme-${run}`, roles: ['user'], limits: { rate: 'fast' } });
    expect(bad.status).toBe(400);
    expect(bad.json.detail).toContain('limits.rate');
    const burstOnly = await admin(a, 'POST', '/admin/keys', { tenant: `acme-${run}`, roles: ['user'], limits: { burst: 5 } });
    expect(burstOnly.status).toBe(400);
    expect(burstOnly.json.detail).toBe('limits.burst: needs limits.rate');
  });
});

describe('portcullis keys with the built CLI', () => {
  it('creates a key with limits, lists its expiry, last use and limits, and rotates it with a grace', async () => {
    requireBuiltCli();
    const env = { PORTCULLIS_ADMIN_TOKEN: TOKEN };
    const created = await runCli(['keys', 'create', '--admin', a.adminUrl!, '--tenant', `acme-${run}`, '--roles', 'user', '--id', `cli-${run}`, '--rate', '5/s', '--quota', '100/day'], env);
    expect(created.stderr).toBe('');
    const key = /API key \(shown once, store it now\): (\S+)/.exec(created.stdout)![1]!;
    expect((await call(a, key)).status).toBe(200);
    await sleep(1_300);
    const list = await runCli(['keys', 'list', '--admin', a.adminUrl!, '--tenant', `acme-${run}`], env);
    expect(list.stdout.split('\n')[0]).toBe('ID\tTENANT\tROLES\tSOURCE\tSTATUS\tCREATED\tEXPIRES\tLAST_USED\tLIMITS');
    const row = list.stdout
      .split('\n')
      .find((l) => l.startsWith(`cli-${run}\t`))!
      .split('\t');
    expect(row.slice(1, 5)).toEqual([`acme-${run}`, 'user', 'dynamic', 'active']);
    expect(row[6]).toBe('-');
    expect(Date.parse(row[7]!)).toBeGreaterThan(Date.now() - 60_000);
    expect(row[8]).toBe('rate=5/s,quota=100/day');

    const rotated = await runCli(['keys', 'rotate', `cli-${run}`, '--admin', a.adminUrl!, '--grace', '2h'], env);
    expect(rotated.stderr).toBe('');
    expect(rotated.code).toBe(0);
    const fresh = /API key \(shown once, store it now\): (\S+)/.exec(rotated.stdout)![1]!;
    expect(rotated.stdout).toMatch(new RegExp(`cli-${run} keeps working until \\d{4}-\\d{2}-\\d{2}T`));
    expect((await call(b, fresh)).status).toBe(200);
    expect((await call(b, key)).status).toBe(200);
    expect((await runCli(['keys', 'rotate', `cli-${run}`, '--admin', a.adminUrl!, '--grace', 'soon'], env)).code).toBe(2);
    expect((await runCli(['keys', 'create', '--tenant', 't', '--roles', 'r', '--rate', '5/s'], env)).code).toBe(2);
  });
});
