// Through the real server: every request leaves one chained event in the audit file (per the
// route's audit mode), system events are recorded, and no secret from the corpus reaches the audit
// file or the logs. Then the CLI verifies and reports on that file.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { generateApiKey, hashApiKey } from '../../../src/authn/api-key.js';
import { run as auditCli } from '../../../src/cli/audit.js';
import { createLogger } from '../../../src/observability/logger.js';

const key = generateApiKey();
const wrongKey = generateApiKey();
const SECRETS = [
  key,
  wrongKey,
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJlLXNlY3JldA',
  'sess-cookie-value-93f1',
  'hunter2-password',
  'query-token-5ad1',
  'apikey-in-query-77aa',
  'tracking-secret-0c3e',
  'client-secret-q-4242',
];
const logs: string[] = [];
let upstream: Server;
let app: App;
let dir: string;
let base: string;
let auditFile: string;

beforeAll(async () => {
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = await mkdtemp(join(tmpdir(), 'pcs-audit-app-'));
  auditFile = join(dir, 'audit', 'audit.ndjson');
  await writeFile(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
authentication:
  apiKeys:
    keys: [{ id: ci-bot, hash: "${hashApiKey(key)}", tenant: acme, roles: [viewer] }]
roles:
  viewer: { permissions: [reports:read] }
routes:
  - { name: health, match: { path: /healthz }, public: true, audit: none }
  - { name: admin, match: { path: "/v1/admin/**" }, require: ["admin:*"], audit: denied }
  - { name: reports, match: { path: "/v1/**" }, require: [reports:read] }
audit:
  chain: true
  spool: ${JSON.stringify(join(dir, 'spool'))}
  redact: [tracking_id]
  sinks:
    - file: { path: ${JSON.stringify(auditFile)}, fsync: always }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    logger: createLogger({ level: 'debug', destination: { write: (l: string) => void logs.push(l) } }),
    watch: false,
  });
  base = app.proxyUrl;
  const send = async (path: string, headers: Record<string, string>) => (await request(`${base}${path}`, { headers })).body.dump();
  await send('/healthz', {});
  await send('/v1/reports/1?token=query-token-5ad1&page=2', { 'x-api-key': key, cookie: 'session=sess-cookie-value-93f1' });
  await send('/v1/reports/2?api_key=apikey-in-query-77aa&password=hunter2-password', { 'x-api-key': wrongKey });
  await send('/v1/reports/3?tracking_id=tracking-secret-0c3e&client_secret=client-secret-q-4242', {
    authorization: `Bearer ${SECRETS[2]}`,
  });
  await send('/v1/admin/users', { 'x-api-key': key });
  await send('/nowhere', {});
  await app.shutdown();
});

afterAll(async () => {
  await app?.shutdown();
  await new Promise((r) => upstream?.close(r));
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Ev {
  type: string;
  request: { path: string; route: string | null } | null;
  decision: { allowed: boolean; code: string | null } | null;
  actor: { subject: string | null } | null;
  detail: { trigger?: string } | null;
}

describe('request audit through the real server', () => {
  it('records one event per request as the route audit mode says, plus the startup policy load', async () => {
    const events = (await readFile(auditFile, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Ev);
    expect(events[0]).toMatchObject({ type: 'policy.loaded', detail: { trigger: 'startup' } });
    const requests = events.filter((e) => e.type === 'request');
    expect(requests.map((e) => [e.request!.route, e.decision!.code])).toEqual([
      ['reports', null],
      ['reports', requests[1]!.decision!.code],
      [requests[2]!.request!.route, requests[2]!.decision!.code],
      ['admin', 'PERMISSION_DENIED'],
      [null, 'ROUTE_NOT_FOUND'],
    ]);
    expect(requests[0]).toMatchObject({ decision: { allowed: true }, actor: { subject: 'ci-bot' } });
    // A wrong key is refused (AUTH_INVALID, or BAD_REQUEST for a credential sent in the query).
    expect(requests[1]!.decision).toMatchObject({ allowed: false });
    expect(['AUTH_INVALID', 'BAD_REQUEST']).toContain(requests[1]!.decision!.code);
    expect(requests[2]!.decision!.allowed).toBe(false);
    expect(requests.some((e) => e.request!.route === 'health')).toBe(false);
    expect(requests[0]!.request!.path).toBe('/v1/reports/1?token=[REDACTED]&page=2');
    expect(requests[2]!.request!.path).toBe('/v1/reports/3?tracking_id=[REDACTED]&client_secret=[REDACTED]');
  });

  it('lets no secret of the corpus reach the audit file or the logs', async () => {
    const audit = await readFile(auditFile, 'utf8');
    const all = `${audit}\n${logs.join('')}`;
    expect(logs.length).toBeGreaterThan(0);
    for (const s of SECRETS) expect(all).not.toContain(s);
  });

  it('verifies and reports on the file with the audit CLI', async () => {
    const out: string[] = [];
    const io = { stdout: (t: string) => void out.push(t), stderr: (t: string) => void out.push(t), env: process.env };
    expect(await auditCli(['verify', auditFile], io)).toBe(0);
    expect(out.join('')).toMatch(/^\d+ events, chain intact/);
    out.length = 0;
    expect(await auditCli(['report', auditFile, '--since', '1d'], io)).toBe(0);
    const md = out.join('');
    for (const h of ['## Access control', '## Authentication', '## Change management', '## Availability', 'chain intact']) expect(md).toContain(h);
    expect(md).toMatch(/\| PERMISSION_DENIED \| 1 \|/);
    out.length = 0;
    expect(await auditCli(['report', auditFile, '--format', 'json'], io)).toBe(0);
    const json = JSON.parse(out.join('')) as { accessControl: { byDecision: Record<string, number> }; chain: { ok: boolean } };
    expect(json.chain.ok).toBe(true);
    expect(json.accessControl.byDecision.denied).toBeGreaterThanOrEqual(3);
  });

  it('exits 1 naming the line and kind when the file was tampered with (built CLI)', async () => {
    const lines = (await readFile(auditFile, 'utf8')).trim().split('\n');
    const tampered = join(dir, 'tampered.ndjson');
    lines[2] = lines[2]!.replace('"ip":"', '"ip":"9');
    await writeFile(tampered, `${lines.join('\n')}\n`);
    const main = new URL('../../../dist/main.js', import.meta.url).pathname;
    const err = await promisify(execFile)(process.execPath, [main, 'audit', 'verify', tampered]).catch((e: { code: number; stdout: string }) => e);
    expect((err as { code: number }).code).toBe(1);
    expect((err as { stdout: string }).stdout).toContain(`${tampered}:3: chain broken (edited)`);
  });
});
