// The access log through the built CLI, read from its stdout: one line per request with the
// operator's fields and none of the caller's secrets, a sampling option, and a stdout nobody reads
// for a while does not hold requests up.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const KEY = 'pcs_test_access_log_key_0123456789';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: OkUpstream;
let policy: string;

beforeAll(async () => {
  requireBuiltCli();
  upstream = await okUpstream();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-access-log-'));
  policy = path.join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: ci, hash: "${hashApiKey(KEY)}", subject: ci-bot, tenant: acme, roles: [viewer] }
roles:
  viewer: { permissions: [reports:read] }
routes:
  - { name: reports, match: { path: "/v1/tenants/{tenant}/reports" }, require: [reports:read], tenantParam: tenant }
  - { name: open, match: { path: "/open" }, public: true }
`,
  );
});

afterAll(async () => {
  await upstream?.close();
});

/** serve with these variables, collecting the access lines it prints on stdout. */
async function serveLogging(env: Record<string, string>): Promise<{ serving: Serving; lines: () => Record<string, unknown>[] }> {
  const serving = await serveCli(policy, env);
  let out = '';
  serving.child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  const lines = () =>
    out
      .split('\n')
      .filter((l) => l.includes('"log":"access"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { serving, lines };
}

async function until<T>(what: string, check: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

describe('serve --access-log', () => {
  it('writes one line per request with route, status, code, duration, caller and request id, and no secret', async () => {
    const { serving, lines } = await serveLogging({ PORTCULLIS_ACCESS_LOG: '1' });
    try {
      const ok = await fetch(`${serving.proxy}/v1/tenants/acme/reports?token=s3cr3t-query-value`, { headers: { 'x-api-key': KEY, authorization: 'Bearer not-for-logs' } });
      expect(ok.status).toBe(200);
      const denied = await fetch(`${serving.proxy}/v1/tenants/globex/reports`, { headers: { 'x-api-key': KEY } });
      expect(denied.status).toBe(403);
      const got = await until('two access lines', () => (lines().length >= 2 ? lines() : undefined));
      expect(got).toHaveLength(2);
      expect(got[0]).toMatchObject({
        log: 'access',
        level: 30,
        msg: 'request',
        requestId: ok.headers.get('x-request-id'),
        method: 'GET',
        path: '/v1/tenants/acme/reports',
        route: 'reports',
        status: 200,
        code: null,
        subject: 'ci-bot',
        tenant: 'acme',
        ip: '127.0.0.1',
      });
      expect(typeof got[0]!.durationMs).toBe('number');
      expect(got[1]).toMatchObject({ path: '/v1/tenants/globex/reports', status: 403, code: 'TENANT_MISMATCH', tenant: 'acme' });
      const text = JSON.stringify(got);
      for (const secret of ['s3cr3t-query-value', 'not-for-logs', KEY]) expect(text).not.toContain(secret);
    } finally {
      await serving.stop();
    }
  });

  it('writes nothing per request without the flag', async () => {
    const { serving, lines } = await serveLogging({});
    try {
      expect((await fetch(`${serving.proxy}/open`)).status).toBe(200);
      await sleep(300);
      expect(lines()).toEqual([]);
    } finally {
      await serving.stop();
    }
  });

  it('logs about the sampled share of requests', async () => {
    const { serving, lines } = await serveLogging({ PORTCULLIS_ACCESS_LOG_SAMPLE: '0.25' });
    try {
      for (let i = 0; i < 400; i++) expect((await fetch(`${serving.proxy}/open`)).status).toBe(200);
      await sleep(500);
      // Binomial(400, 0.25): mean 100, sd ~8.7; these bounds are over 6 sd away.
      expect(lines().length).toBeGreaterThan(45);
      expect(lines().length).toBeLessThan(155);
    } finally {
      await serving.stop();
    }
  });

  it('keeps serving while nobody reads its stdout, and writes every line once it is read again', async () => {
    const { serving, lines } = await serveLogging({ PORTCULLIS_ACCESS_LOG: '1' });
    try {
      const stdout = serving.child.stdout!;
      stdout.pause();
      // Far more than a pipe holds (64 KiB): were writes synchronous, the gateway would stop here.
      const n = 1500;
      const started = Date.now();
      for (let i = 0; i < n; i += 50) {
        const batch = await Promise.all(Array.from({ length: 50 }, () => fetch(`${serving.proxy}/open?padding=${'x'.repeat(200)}`).then((r) => r.status)));
        expect(batch.every((s) => s === 200)).toBe(true);
      }
      const servedMs = Date.now() - started;
      expect(lines()).toHaveLength(0);
      stdout.resume();
      await until(`${n} access lines`, () => (lines().length >= n ? true : undefined));
      expect(lines()).toHaveLength(n);
      // Generous for a loaded machine; a blocked event loop would not finish at all.
      expect(servedMs).toBeLessThan(60_000);
    } finally {
      await serving.stop();
    }
  });

  it('refuses a sample rate outside (0, 1] with a usage error', async () => {
    const r = await runCli(['serve', '--policy', policy, '--access-log-sample', '1.5']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--access-log-sample: expected a share of requests above 0 and at most 1');
  });
});
