// What docker-compose.yml runs, as plain processes (no Docker engine here): the echo upstream from
// dist/, and `portcullis serve` on a copy of the mounted policy directory with the compose
// environment (REDIS_URL pointing at a real redis-server), then a hot reload by editing the directory.
import { type ChildProcess, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { freePort, redisUrl } from '../../helpers/redis.js';

const root = new URL('../../../', import.meta.url).pathname;
const compose = parse(readFileSync(`${root}docker-compose.yml`, 'utf8')) as {
  services: Record<string, { entrypoint?: string[]; command?: string[]; environment?: Record<string, string>; healthcheck?: { test: string[] } }>;
};
const TOKEN = 'compose-stack-admin-token';
const children: ChildProcess[] = [];
let dir: string;
let proxy: string;
let admin: string;
let adminPort: number;

function start(args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, args, { cwd: root, env: { ...process.env, LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  child.on('exit', (code) => {
    if (code !== 0 && code !== null) process.stderr.write(`${args.join(' ')} exited ${code}:\n${log}\n`);
  });
  children.push(child);
  return child;
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms = 15_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch {
      // not up yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-compose-'));
  cpSync(`${root}deploy/compose/policies`, dir, { recursive: true });
  const echo = compose.services.echo!;
  const echoPort = await freePort();
  // The echo service's entrypoint, with the port moved to a free one on loopback.
  start(echo.entrypoint!.slice(1), { ...echo.environment, HOST: '127.0.0.1', PORT: String(echoPort) });
  const p = compose.services.portcullis!;
  const listenPort = await freePort();
  adminPort = await freePort();
  const args = [...p.command!];
  args[args.indexOf('--policy') + 1] = dir;
  args[args.indexOf('--listen') + 1] = `127.0.0.1:${listenPort}`;
  args[args.indexOf('--admin') + 1] = `127.0.0.1:${adminPort}`;
  start(['dist/main.js', ...args], {
    ...p.environment,
    REDIS_URL: redisUrl(),
    UPSTREAM_URL: `http://127.0.0.1:${echoPort}`,
    PORTCULLIS_ADMIN_TOKEN: TOKEN,
  });
  proxy = `http://127.0.0.1:${listenPort}`;
  admin = `http://127.0.0.1:${adminPort}`;
  await until('echo upstream', async () => ((await fetch(`http://127.0.0.1:${echoPort}/`)).status < 500 ? true : undefined));
  await until('portcullis readiness', async () => ((await fetch(`${admin}/readyz`)).status === 200 ? true : undefined));
});

afterAll(async () => {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null) return resolve();
          c.once('exit', () => resolve());
          c.kill('SIGTERM');
        }),
    ),
  );
  rmSync(dir, { recursive: true, force: true });
});

describe('the compose stack as plain processes', () => {
  it('passes the portcullis service healthcheck', async () => {
    const test = compose.services.portcullis!.healthcheck!.test;
    expect(test.slice(0, 2)).toEqual(['CMD', 'node']);
    const args = test.slice(2).map((a) => a.replace('http://127.0.0.1:9090', admin));
    const code = await new Promise<number | null>((resolve) => spawn(process.execPath, args).on('exit', resolve));
    expect(code).toBe(0);
  });

  it('forwards a public route to the echo upstream and refuses a protected one', async () => {
    const open = await fetch(`${proxy}/public/hello`);
    expect(open.status).toBe(200);
    expect(await open.text()).toContain('/public/hello');
    const closed = await fetch(`${proxy}/v1/tenants/acme/reports/q1`);
    expect(closed.status).toBe(401);
    expect(((await closed.json()) as { code: string }).code).toBe('AUTH_MISSING');
  });

  it('forwards a request with the demo API key, with identity headers and without the key', async () => {
    const res = await fetch(`${proxy}/v1/tenants/acme/reports/q1`, { headers: { 'x-api-key': 'demo-acme-key' } });
    expect(res.status).toBe(200);
    const echoed = (await res.json()) as { path: string; headers: Record<string, string> };
    expect(echoed.path).toBe('/v1/tenants/acme/reports/q1');
    expect(echoed.headers['x-auth-tenant']).toBe('acme');
    expect(echoed.headers['x-auth-subject']).toBe('demo-acme');
    expect(echoed.headers['x-api-key']).toBeUndefined();
    const other = await fetch(`${proxy}/v1/tenants/globex/reports/q1`, { headers: { 'x-api-key': 'demo-acme-key' } });
    expect(other.status).toBe(403);
    expect(((await other.json()) as { code: string }).code).toBe('TENANT_MISMATCH');
  });

  it('enforces route limits in the Redis that REDIS_URL names', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await fetch(`${proxy}/limited/x`)).status);
    // burst 3 at 1/s: however slow this machine, 8 requests in a row cannot all pass.
    expect(statuses.slice(0, 3)).toEqual([200, 200, 200]);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(3);
    const denied = await fetch(`${proxy}/limited/x`);
    expect(denied.status).toBe(429);
    expect(((await denied.json()) as { code: string }).code).toBe('RATE_LIMITED');
    expect(denied.headers.get('retry-after')).toMatch(/^\d+$/);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/portcullis_store_degraded 0/);
  });

  it('exposes the metrics Prometheus scrapes', async () => {
    const text = await (await fetch(`${admin}/metrics`)).text();
    expect(text).toMatch(/portcullis_requests_total\{[^}]*route="public-demo"[^}]*\} \d+/);
  });

  it('reloads the mounted policy directory when a file in it changes', async () => {
    const before = ((await (await fetch(`${admin}/readyz`)).json()) as { policy: string }).policy;
    expect((await fetch(`${proxy}/open/now`)).status).toBe(404);
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, readFileSync(file, 'utf8').replace('path: "/public/**"', 'path: "/open/**"'));
    await until('the reloaded policy', async () => ((await fetch(`${proxy}/open/now`)).status === 200 ? true : undefined));
    const after = ((await (await fetch(`${admin}/readyz`)).json()) as { policy: string }).policy;
    expect(after).not.toBe(before);
    expect((await fetch(`${proxy}/public/hello`)).status).toBe(404);
  });
});
