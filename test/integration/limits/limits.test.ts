// Limits through the real app on real sockets, with a real Redis shared by two replicas.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { PrivateRedis, redisUrl } from '../../helpers/redis.js';

let upstream: Server;
let upstreamUrl: string;
let hold: (() => void)[] = [];
const apps: App[] = [];
const run = Date.now().toString(36);

const policy = (store: string, extra = '') => `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
      - { id: slow-key, hash: "${hashApiKey('slow-secret')}", tenant: slowco, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers:
    small: { rate: 1/m, burst: 30, quota: 1000/day }
    narrow: { concurrency: 2 }
  default: small
  members: { slowco: narrow }
routes:
  - name: api
    match: { path: "/api/**" }
    require: ["api:use"]
  - name: anon
    match: { path: "/anon/**" }
    public: true
    limits: [{ by: ip, rate: 1/m, burst: 3 }]
${store}${extra}`;

async function start(policyText: string): Promise<App> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-limits-'));
  writeFileSync(join(dir, 'p.yaml'), policyText);
  const app = await startApp({
    policyPath: join(dir, 'p.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  apps.push(app);
  return app;
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    if (req.url?.startsWith('/api/hold')) {
      hold.push(() => res.end('held'));
      return;
    }
    if (req.url?.startsWith('/api/fail')) {
      req.socket.destroy();
      return;
    }
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const release of hold) release();
  for (const a of apps) await a.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

const get = async (base: string, path: string, key?: string, dispatcher?: Agent) => {
  const res = await request(base + path, { headers: key ? { 'x-api-key': key } : {}, ...(dispatcher === undefined ? {} : { dispatcher }) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
};

describe('limits', () => {
  it('two replicas on one Redis admit exactly the tenant burst in total, under parallel load', async () => {
    const store = `store: { url: "${redisUrl()}", prefix: "it:${run}:a:", onError: deny }\n`;
    const [a, b] = [await start(policy(store)), await start(policy(store))];
    const agent = new Agent({ connections: 20 });
    const results = await Promise.all(Array.from({ length: 80 }, (_, i) => get(i % 2 ? a.proxyUrl : b.proxyUrl, '/api/x', 'acme-secret', agent)));
    await agent.close();
    expect(results.filter((r) => r.status === 200)).toHaveLength(30);
    const limited = results.filter((r) => r.status === 429);
    expect(limited).toHaveLength(50);
    expect(JSON.parse(limited[0]!.text).code).toBe('RATE_LIMITED');
    expect(Number(limited[0]!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    const ok = results.find((r) => r.status === 200)!;
    expect(ok.headers['ratelimit-policy']).toBe('"tier";q=30;w=1800');
    expect(ok.headers.ratelimit).toMatch(/^"tier";r=\d+;t=\d+$/);
  });

  it('keeps one bucket per tenant and, for route limits, one per principal or header value', async () => {
    const app = await start(`version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
      - { id: a1, hash: "${hashApiKey('a1-secret')}", tenant: acme, roles: [user] }
      - { id: a2, hash: "${hashApiKey('a2-secret')}", tenant: acme, roles: [user] }
      - { id: g1, hash: "${hashApiKey('g1-secret')}", tenant: globex, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { small: { rate: 1/m, burst: 3 } }
  default: small
routes:
  - name: per-principal
    match: { path: "/p/**" }
    require: ["api:use"]
    limits: [{ by: principal, rate: 1/m, burst: 1 }]
  - name: tier-only
    match: { path: "/t/**" }
    require: ["api:use"]
  - name: per-user
    match: { path: "/h/**" }
    public: true
    limits: [{ by: "header:x-user", rate: 1/m, burst: 1 }]
`);
    const statuses = async (path: string, key: string, n: number) => {
      const out: number[] = [];
      for (let i = 0; i < n; i++) out.push((await get(app.proxyUrl, path, key)).status);
      return out;
    };
    // Route bucket by principal: a1 and a2 (same tenant) each get their one request.
    expect(await statuses('/p/x', 'a1-secret', 2)).toEqual([200, 429]);
    expect(await statuses('/p/x', 'a2-secret', 2)).toEqual([200, 429]);
    // The tier bucket (burst 3) is per tenant: acme spent 2 above (a refused request takes no token),
    // so one more acme request passes; globex has its own full bucket.
    expect(await statuses('/t/x', 'a1-secret', 2)).toEqual([200, 429]);
    expect(await statuses('/t/x', 'g1-secret', 4)).toEqual([200, 200, 200, 429]);
    const byUser = async (user: string) => (await request(`${app.proxyUrl}/h/x`, { headers: { 'x-user': user } })).statusCode;
    expect([await byUser('ann'), await byUser('ann'), await byUser('bob')]).toEqual([200, 429, 200]);
    // Repeating the header names no new identity: the first value counts (the joined "ann, zed"
    // would be a fresh bucket), and a value no one has used yet in a second line buys nothing.
    const repeated = await request(`${app.proxyUrl}/h/x`, { headers: ['x-user', 'ann', 'x-user', 'zed'] });
    await repeated.body.dump();
    expect(repeated.statusCode).toBe(429);
  });

  it('counts a request without the identifier against one shared bucket, not a bypass', async () => {
    const app = await start(policy(''));
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await get(app.proxyUrl, '/anon/x')).status);
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });

  it('holds a concurrency slot per in-flight request and frees it on finish, on client abort and on upstream error', async () => {
    const app = await start(policy(`store: { url: "${redisUrl()}", prefix: "it:${run}:c:" }\n`));
    const held = hold.length;
    const first = get(app.proxyUrl, '/api/hold/1', 'slow-secret');
    const ac = new AbortController();
    const second = request(`${app.proxyUrl}/api/hold/2`, { headers: { 'x-api-key': 'slow-secret' }, signal: ac.signal }).catch(() => undefined);
    // Both admitted (they reached the upstream), however long that takes on a loaded machine.
    for (const until = Date.now() + 10_000; hold.length < held + 2 && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    expect(hold).toHaveLength(held + 2);
    const third = await get(app.proxyUrl, '/api/x', 'slow-secret');
    expect(third.status).toBe(429);
    expect(JSON.parse(third.text).code).toBe('CONCURRENCY_EXCEEDED');
    ac.abort(); // frees slot 2
    await second;
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(app.proxyUrl, '/api/fail', 'slow-secret')).status).toBe(502); // takes and frees a slot
    await new Promise((r) => setTimeout(r, 100));
    expect((await get(app.proxyUrl, '/api/x', 'slow-secret')).status).toBe(200);
    for (const release of hold) release();
    hold = [];
    expect((await first).status).toBe(200);
  });

  it('answers 503 STORE_UNAVAILABLE with onError deny, lets requests through with allow, and resumes when Redis returns', async () => {
    const server = await PrivateRedis.start();
    try {
      const deny = await start(policy(`store: { url: "${server.url}", onError: deny, timeout: 100ms }\n`));
      const allow = await start(policy(`store: { url: "${server.url}", onError: allow, timeout: 100ms }\n`));
      expect((await get(deny.proxyUrl, '/api/x', 'acme-secret')).status).toBe(200);
      await server.kill();
      const t0 = Date.now();
      const denied = await get(deny.proxyUrl, '/api/x', 'acme-secret');
      expect(denied.status).toBe(503);
      expect(JSON.parse(denied.text).code).toBe('STORE_UNAVAILABLE');
      expect((await get(allow.proxyUrl, '/api/x', 'acme-secret')).status).toBe(200);
      expect(Date.now() - t0).toBeLessThan(2000);
      await server.start();
      const until = Date.now() + 5000;
      let status = 0;
      while (status !== 200 && Date.now() < until) {
        status = (await get(deny.proxyUrl, '/api/x', 'acme-secret')).status;
        if (status !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});
