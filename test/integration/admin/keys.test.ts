// Dynamic API keys through the admin API, on two real replicas sharing a real Redis (issue 6).

import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import type { SystemEvent } from '../../../src/events.js';
import { createLogger } from '../../../src/observability/logger.js';
import { requireBuiltCli, runCli } from '../../helpers/cli.js';
import { redisUrl } from '../../helpers/redis.js';
import { type OkUpstream, okUpstream } from '../../helpers/upstream.js';

const TOKEN = 'test-admin-token-0123456789';
let upstream: OkUpstream;
let upstreamUrl: string;
const apps: App[] = [];
let a: App;
let b: App;
let redis: Redis;
const events: SystemEvent[] = [];
const run = Date.now().toString(36);

const policy = (storeUrl: string) => `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
      - { id: static-key, hash: "${hashApiKey('static-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { big: { rate: 1000/s, burst: 1000 } }
  default: big
store: { url: "${storeUrl}" }
routes:
  - name: api
    match: { path: "/api/**" }
    require: ["api:use"]
`;

async function start(): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'));
  writeFileSync(join(dir, 'p.yaml'), policy(redisUrl()));
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

const get = async (app: App, key: string) => {
  const res = await request(`${app.proxyUrl}/api/x`, { headers: { 'x-api-key': key } });
  await res.body.text();
  return res.statusCode;
};
const adminReq = async (app: App, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown, token: string = TOKEN) => {
  const res = await request(`${app.adminUrl}${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, json: text ? JSON.parse(text) : undefined, text };
};

async function commandstats(): Promise<number> {
  const info = await redis.info('commandstats');
  let n = 0;
  for (const m of info.matchAll(/^cmdstat_(hget|hmget):calls=(\d+)/gm)) n += Number(m[2]);
  return n;
}

beforeAll(async () => {
  upstream = await okUpstream();
  upstreamUrl = upstream.url;
  redis = new Redis(redisUrl());
  a = await start();
  b = await start();
  a.bus.subscribe((e) => events.push(e));
});

afterAll(async () => {
  for (const app of apps) await app.shutdown();
  redis.disconnect();
  await upstream.close();
});

describe('dynamic API keys', () => {
  it('requires the admin token', async () => {
    expect((await adminReq(a, 'GET', '/admin/keys', undefined, '')).status).toBe(401);
    expect((await adminReq(a, 'POST', '/admin/keys', { tenant: 'x' }, 'wrong')).status).toBe(401);
  });

  it('a key created on replica A authenticates on B; revoked on B it is refused on A within 1 s', async () => {
    const id = `k-${run}`;
    const created = await adminReq(a, 'POST', '/admin/keys', { tenant: 'acme', roles: ['user'], id });
    expect(created.status).toBe(201);
    const key: string = created.json.key;
    expect(key).toMatch(/^pcs_/);
    expect(events).toContainEqual({ type: 'key.created', keyId: id, tenant: 'acme' });
    expect(await get(b, key)).toBe(200);
    expect(await get(a, key)).toBe(200);
    expect(await get(a, 'static-secret')).toBe(200);

    const listed = await adminReq(b, 'GET', '/admin/keys?tenant=acme');
    expect(listed.status).toBe(200);
    const mine = listed.json.keys.find((k: { id: string }) => k.id === id);
    expect(mine).toMatchObject({ id, tenant: 'acme', roles: ['user'] });
    expect(listed.text).not.toContain(key);
    expect(listed.text).not.toContain(hashApiKey(key).slice(7));
    expect((await adminReq(b, 'GET', '/admin/keys?tenant=nobody')).json.keys).toEqual([]);
    expect((await adminReq(a, 'POST', '/admin/keys', { tenant: 'acme', id })).status).toBe(409);

    expect((await adminReq(b, 'DELETE', `/admin/keys/${id}`)).status).toBe(204);
    const t0 = Date.now();
    let status = await get(a, key);
    while (status === 200 && Date.now() - t0 < 1000) {
      await new Promise((r) => setTimeout(r, 20));
      status = await get(a, key);
    }
    expect(status).toBe(401);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await get(b, key)).toBe(401);
    expect((await adminReq(b, 'DELETE', `/admin/keys/${id}`)).status).toBe(404);
  });

  it('caches unknown keys: repeated misses do not hit Redis', async () => {
    const junk = `pcs_unknown-${run}`;
    expect(await get(a, junk)).toBe(401);
    const before = await commandstats();
    for (let i = 0; i < 50; i++) expect(await get(a, junk)).toBe(401);
    expect((await commandstats()) - before).toBeLessThanOrEqual(1);
  });

  it('a key created after its digest was cached as unknown works at once', async () => {
    // Creation broadcasts an invalidation, so a negative entry does not hide a new key.
    const created = await adminReq(a, 'POST', '/admin/keys', { tenant: 'acme', roles: ['user'] });
    expect(created.status).toBe(201);
    expect(await get(b, created.json.key)).toBe(200);
  });

  it('portcullis keys create|list|revoke --admin against a running app', async () => {
    requireBuiltCli();
    const env = { PORTCULLIS_ADMIN_TOKEN: TOKEN };
    const id = `cli-${run}`;
    const c = await runCli(['keys', 'create', '--admin', a.adminUrl!, '--tenant', 'acme', '--roles', 'user', '--id', id], env);
    expect(c.stderr).toBe('');
    expect(c.code).toBe(0);
    const key = /(pcs_\S+)/.exec(c.stdout)![1]!;
    expect(await get(b, key)).toBe(200);
    const l = await runCli(['keys', 'list', '--admin', b.adminUrl!, '--tenant', 'acme'], env);
    expect(l.code).toBe(0);
    expect(l.stdout).toContain(id);
    expect(l.stdout).not.toContain(key);
    const r = await runCli(['keys', 'revoke', id, '--admin', b.adminUrl!], env);
    expect(r.code).toBe(0);
    await new Promise((res) => setTimeout(res, 300));
    expect(await get(a, key)).toBe(401);
    const again = await runCli(['keys', 'revoke', id, '--admin', b.adminUrl!], env);
    expect(again.code).toBe(1);
    const noToken = await runCli(['keys', 'list', '--admin', b.adminUrl!], {}, ['PORTCULLIS_ADMIN_TOKEN']);
    expect(noToken.code).toBe(2);
  });
});
