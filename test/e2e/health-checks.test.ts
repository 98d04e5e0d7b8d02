// Active health checks through the built CLI with real upstreams that go down and come back: a
// failing target leaves the rotation before requests fail on it, comes back once it passes again,
// and with every target out requests get 503 UPSTREAM_UNAVAILABLE. The state shows on
// /admin/upstreams/health and /metrics, and each transition is a system audit event.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, type Serving, serveCli } from '../helpers/cli.js';

const TOKEN = 'health-check-test-admin-token-0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Target {
  readonly name: string;
  url: string;
  port: number;
  /** What /healthz answers. */
  healthStatus: number;
  /** Requests (other than probes) it served. */
  served: number;
  server: Server;
}

async function startTarget(name: string, port = 0): Promise<Target> {
  const t: Target = { name, url: '', port, healthStatus: 200, served: 0, server: undefined as unknown as Server };
  t.server = createServer((req, res) => {
    if (req.url === '/base/healthz') {
      res.statusCode = t.healthStatus;
      res.end();
      return;
    }
    t.served++;
    res.end(name);
  });
  await new Promise<void>((r) => t.server.listen(port, '127.0.0.1', r));
  t.port = (t.server.address() as AddressInfo).port;
  t.url = `http://127.0.0.1:${t.port}`;
  return t;
}

async function stopTarget(t: Target): Promise<void> {
  t.server.closeAllConnections();
  await new Promise<void>((r) => t.server.close(() => r()));
}

async function until<T>(what: string, check: () => Promise<T | undefined> | T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

let a: Target;
let b: Target;
let serving: Serving;
let auditFile: string;

beforeAll(async () => {
  requireBuiltCli();
  a = await startTarget('a');
  b = await startTarget('b');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-health-'));
  auditFile = path.join(dir, 'audit.ndjson');
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app:
    targets: ["${a.url}/base", "${b.url}/base"]
    healthCheck: { path: /healthz, interval: 150ms, timeout: 150ms, healthyAfter: 2, unhealthyAfter: 2 }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  sinks:
    - file: { path: audit.ndjson }
`,
  );
  serving = await serveCli(path.join(dir, 'policy.yaml'), { PORTCULLIS_ADMIN_TOKEN: TOKEN });
});

afterAll(async () => {
  await serving?.stop();
  for (const t of [a, b]) if (t?.server.listening) await stopTarget(t);
});

async function health(): Promise<{ target: string; healthy: boolean; lastResult: string | null }[]> {
  const res = await fetch(`${serving.admin}/admin/upstreams/health`, { headers: { authorization: `Bearer ${TOKEN}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { targets: { target: string; healthy: boolean; lastResult: string | null }[] }).targets;
}
const healthyOf = async (t: Target) => (await health()).find((x) => x.target === t.url)?.healthy;
const events = (): Record<string, unknown>[] =>
  existsSync(auditFile)
    ? readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

async function burst(n: number): Promise<number[]> {
  const statuses: number[] = [];
  for (let i = 0; i < n; i++) statuses.push((await fetch(`${serving.proxy}/x`)).status);
  return statuses;
}

describe('active health checks', () => {
  it('keeps both passing targets in rotation', async () => {
    await until('both probed', async () => (await health()).every((t) => t.lastResult === 'status 200') || undefined);
    a.served = b.served = 0;
    expect(await burst(6)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(a.served).toBe(3);
    expect(b.served).toBe(3);
  });

  it('takes a target that fails its checks out of rotation before requests fail on it', async () => {
    a.healthStatus = 503;
    await until('a out of rotation', async () => (await healthyOf(a)) === false || undefined);
    a.served = b.served = 0;
    expect(await burst(6)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(a.served).toBe(0);
    expect(b.served).toBe(6);
    const metrics = await (await fetch(`${serving.admin}/metrics`)).text();
    expect(metrics).toContain(`portcullis_upstream_healthy{upstream="app",target="${a.url}"} 0`);
    expect(metrics).toContain(`portcullis_upstream_healthy{upstream="app",target="${b.url}"} 1`);
    const e = await until('the unhealthy event', () => events().find((x) => x.type === 'upstream.health'));
    expect(e.detail).toEqual({ upstream: 'app', target: a.url, from: 'healthy', to: 'unhealthy', reason: 'status 503' });
    expect(e.severity).toBe('warning');
  });

  it('brings the target back once it passes healthyAfter checks in a row', async () => {
    a.healthStatus = 200;
    await until('a back in rotation', async () => (await healthyOf(a)) === true || undefined);
    a.served = b.served = 0;
    await burst(4);
    expect(a.served).toBe(2);
    expect(b.served).toBe(2);
    await until('the healthy event', () => events().find((x) => x.type === 'upstream.health' && (x.detail as { to: string }).to === 'healthy'));
  });

  it('answers 503 UPSTREAM_UNAVAILABLE when no target passes, and recovers when one comes back', async () => {
    a.healthStatus = 500;
    const bPort = b.port;
    await stopTarget(b);
    await until('both out of rotation', async () => (await health()).every((t) => !t.healthy) || undefined);
    const res = await fetch(`${serving.proxy}/x`);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(((await res.json()) as { code: string }).code).toBe('UPSTREAM_UNAVAILABLE');
    const down = (await health()).find((t) => t.target === b.url);
    expect(down?.lastResult).toMatch(/ECONNREFUSED|ECONNRESET|timeout/);
    b = await startTarget('b', bPort);
    await until('b back', async () => (await healthyOf(b)) === true || undefined);
    expect(await burst(2)).toEqual([200, 200]);
  });
});
