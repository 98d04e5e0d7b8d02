// authentication.lockout through the real app on real sockets, counted in a real Redis.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import type { SystemEvent } from '../../../src/events.js';
import { createLogger } from '../../../src/observability/logger.js';
import { redisUrl } from '../../helpers/redis.js';

let upstream: Server;
let app: App;
const events: SystemEvent[] = [];
const run = Date.now().toString(36);

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-lockout-'));
  writeFileSync(
    join(dir, 'p.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
trustedProxies: [127.0.0.1/32]
authentication:
  apiKeys:
    keys:
      - { id: good, hash: "${hashApiKey('good-secret')}", roles: [user] }
  lockout: { failures: 3, window: 1m, duration: 5m }
roles: { user: { permissions: ["api:use"] } }
store: { url: "${redisUrl()}", prefix: "it:${run}:lock:", onError: allow }
routes:
  - { name: health, match: { path: /health }, public: true }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
`,
  );
  app = await startApp({ policyPath: join(dir, 'p.yaml'), listen: { host: '127.0.0.1', port: 0 }, admin: null, drainMs: 0, demo: false, watch: false, logger: createLogger({ level: 'silent' }) });
  app.bus.subscribe((e) => events.push(e));
});

afterAll(async () => {
  await app?.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

const get = async (path: string, ip: string, key?: string) => {
  const res = await request(app.proxyUrl + path, { headers: { 'x-forwarded-for': ip, ...(key ? { 'x-api-key': key } : {}) } });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, code: text.includes('"code"') ? (JSON.parse(text) as { code: string }).code : undefined };
};

const until = async (cond: () => Promise<boolean>, ms = 2000): Promise<boolean> => {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return false;
};

describe('authentication lockout', () => {
  it('locks an IP out after N bad keys; other IPs and public routes are unaffected', async () => {
    const bad = '198.51.100.10';
    const other = '198.51.100.20';
    // AUTH_MISSING does not count
    for (let i = 0; i < 5; i++) expect((await get('/api/x', bad)).status).toBe(401);
    for (let i = 0; i < 3; i++) expect((await get('/api/x', bad, `wrong-${i}`)).code).toBe('AUTH_INVALID');
    // Counting is fire-and-forget: wait until this replica has learned the lockout.
    expect(await until(async () => (await get('/api/x', bad, 'good-secret')).status === 429)).toBe(true);
    const locked = await get('/api/x', bad, 'good-secret');
    expect(locked.status).toBe(429);
    expect(locked.code).toBe('LOCKED_OUT');
    const retry = Number(locked.headers['retry-after']);
    expect(retry).toBeGreaterThan(290);
    expect(retry).toBeLessThanOrEqual(300);
    expect((await get('/health', bad)).status).toBe(200);
    // Another IP still authenticates.
    expect((await get('/api/x', other, 'good-secret')).status).toBe(200);
    expect((await get('/api/x', other, 'wrong')).code).toBe('AUTH_INVALID');
    expect((await get('/api/x', other, 'good-secret')).status).toBe(200);
    const lockouts = events.filter((e) => e.type === 'lockout');
    expect(lockouts).toHaveLength(1);
    expect(lockouts[0]).toMatchObject({ type: 'lockout', ip: bad });
  });
});
