// Circuit breakers, round robin and retries on real sockets: a fault-injecting upstream on port 0
// (503 bursts, hangs, recovery), a port nobody listens on (connection refused), the real app.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';
import { freePort } from '../../helpers/redis.js';

type Mode = 'ok' | '503' | 'hang' | 'hold';

interface FaultUpstream {
  server: Server;
  url: string;
  mode: Mode;
  hits: string[];
  held: ServerResponse[];
}

async function faultUpstream(): Promise<FaultUpstream> {
  const up: FaultUpstream = { server: undefined as unknown as Server, url: '', mode: 'ok', hits: [], held: [] };
  up.server = createServer((req: IncomingMessage, res: ServerResponse) => {
    up.hits.push(`${req.method} ${req.url}`);
    req.resume();
    if (up.mode === '503') res.writeHead(503).end('down');
    else if (up.mode === 'hang' || up.mode === 'hold') up.held.push(res);
    else res.end('ok');
  });
  await new Promise<void>((r) => up.server.listen(0, '127.0.0.1', r));
  up.url = `http://127.0.0.1:${(up.server.address() as AddressInfo).port}`;
  return up;
}

const TOKEN = 'resilience-admin-token';
let flaky: FaultUpstream;
let healthy: FaultUpstream;
let refused: string;
let app: App;

beforeAll(async () => {
  flaky = await faultUpstream();
  healthy = await faultUpstream();
  refused = `http://127.0.0.1:${await freePort()}`;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-resilience-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  flaky:
    url: ${flaky.url}
    timeouts: { connect: 500ms, response: 300ms }
    breaker: { consecutiveFailures: 3, cooldown: 2s, halfOpenProbes: 2 }
  pair:
    targets: [${refused}, ${healthy.url}]
    timeouts: { connect: 500ms, response: 2s }
    breaker: { consecutiveFailures: 2, cooldown: 30s }
  retrying:
    targets: [${refused}, ${healthy.url}]
    timeouts: { connect: 500ms, response: 2s }
    retries: 1
routes:
  - { name: flaky, match: { path: "/flaky/**" }, upstream: flaky, public: true }
  - { name: pair, match: { path: "/pair/**" }, upstream: pair, public: true }
  - { name: retrying, match: { path: "/retrying/**" }, upstream: retrying, public: true }
`,
  );
  app = await startApp({
    policyPath: dir,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    adminToken: TOKEN,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
});

afterAll(async () => {
  for (const up of [flaky, healthy]) {
    for (const res of up.held) res.destroy();
    up.server.closeAllConnections();
    await new Promise<void>((r) => up.server.close(() => r()));
  }
  await app?.shutdown();
});

async function call(path: string, method = 'GET', body?: string) {
  const res = await request(app.proxyUrl + path, { method, ...(body === undefined ? {} : { body }) });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text };
}

async function breakerMetric(upstream: string, target: string): Promise<string | undefined> {
  const res = await request(`${app.adminUrl}/metrics`);
  const text = await res.body.text();
  const line = text.split('\n').find((l) => l.startsWith(`portcullis_breaker_state{upstream="${upstream}",target="${target}"}`));
  return line?.split(' ').pop();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('circuit breaker', () => {
  it('opens on 503s and a timeout, fast-fails with Retry-After, probes after the cooldown and closes again (visible on /metrics)', async () => {
    const states: (string | undefined)[] = [await breakerMetric('flaky', flaky.url)];
    flaky.mode = '503';
    expect((await call('/flaky/a')).status).toBe(503);
    expect((await call('/flaky/b')).status).toBe(503);
    flaky.mode = 'hang';
    expect((await call('/flaky/c')).status).toBe(504); // response timeout: the third failure in a row
    states.push(await breakerMetric('flaky', flaky.url));

    const hitsWhenOpened = flaky.hits.length;
    const fast = await call('/flaky/d');
    expect(fast.status).toBe(503);
    expect(JSON.parse(fast.text).code).toBe('BREAKER_OPEN');
    expect(fast.headers['retry-after']).toBe('2');
    expect(flaky.hits.length).toBe(hitsWhenOpened); // fast-failed: the upstream never saw it

    await sleep(2_100);
    expect(await breakerMetric('flaky', flaky.url)).toBe('1'); // half-open after the cooldown, even without traffic
    flaky.mode = 'hold';
    const probes = [call('/flaky/p1'), call('/flaky/p2'), call('/flaky/p3')];
    const third = await Promise.race([probes[2]!, sleep(1_000).then(() => undefined)]);
    expect(third?.status).toBe(503); // only halfOpenProbes (2) requests get through while half-open
    await sleep(50);
    expect(flaky.hits.slice(hitsWhenOpened)).toEqual(['GET /flaky/p1', 'GET /flaky/p2']);
    states.push(await breakerMetric('flaky', flaky.url));

    for (const res of flaky.held.splice(0)) if (!res.destroyed) res.end('recovered');
    flaky.mode = 'ok';
    const answered = await Promise.all(probes.slice(0, 2));
    expect(answered.map((r) => r.status)).toEqual([200, 200]);
    states.push(await breakerMetric('flaky', flaky.url));
    expect(states).toEqual(['0', '2', '1', '0']); // closed → open → half-open → closed
    expect((await call('/flaky/after')).status).toBe(200);

    const admin = await request(`${app.adminUrl}/admin/breakers`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const body = (await admin.body.json()) as { breakers: { upstream: string; target: string; state: string }[] };
    expect(body.breakers).toContainEqual({ upstream: 'flaky', target: flaky.url, state: 'closed', retryAfterSeconds: 0 });
    const metrics = await (await request(`${app.adminUrl}/metrics`)).body.text();
    for (const to of ['open', 'half-open', 'closed']) {
      expect(metrics).toContain(`portcullis_breaker_transitions_total{upstream="flaky",target="${flaky.url}",to="${to}"} 1`);
    }
  });

  it('refuses /admin/breakers without the token', async () => {
    const res = await request(`${app.adminUrl}/admin/breakers`);
    await res.body.text();
    expect(res.statusCode).toBe(401);
  });
});

describe('round robin', () => {
  it('skips a target whose breaker opened after refused connections', async () => {
    const before = healthy.hits.length;
    const statuses = [];
    for (let i = 0; i < 8; i++) statuses.push((await call(`/pair/${i}`)).status);
    // refused, healthy, refused (opens the refused target's breaker), then healthy only.
    expect(statuses).toEqual([502, 200, 502, 200, 200, 200, 200, 200]);
    expect(healthy.hits.length - before).toBe(6);
    expect(await breakerMetric('pair', refused)).toBe('2');
    expect(await breakerMetric('pair', healthy.url)).toBe('0');
  });
});

describe('retries', () => {
  it('retries a GET on another target when the connection was refused', async () => {
    const before = healthy.hits.length;
    const results = [];
    for (let i = 0; i < 4; i++) results.push((await call(`/retrying/get${i}`)).status);
    expect(results).toEqual([200, 200, 200, 200]);
    expect(healthy.hits.length - before).toBe(4);
    const metrics = await (await request(`${app.adminUrl}/metrics`)).body.text();
    expect(metrics).toMatch(/portcullis_upstream_retries_total\{upstream="retrying"\} [1-9]/);
  });

  it('never retries a POST', async () => {
    const before = healthy.hits.length;
    const statuses = [];
    // With a body, then without one: POST is not idempotent either way.
    for (let i = 0; i < 4; i++) statuses.push((await call(`/retrying/post${i}`, 'POST', i < 2 ? 'payload' : undefined)).status);
    expect(statuses.filter((s) => s === 502)).toHaveLength(2); // the two that went to the refused target
    expect(statuses.filter((s) => s === 200)).toHaveLength(2);
    expect(healthy.hits.slice(before).every((h) => h.startsWith('POST'))).toBe(true);
    expect(healthy.hits.length - before).toBe(2);
  });
});
