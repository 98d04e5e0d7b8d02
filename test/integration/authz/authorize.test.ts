// Authorization through the real proxy: real listener, real stages, a real upstream on port 0.
// Problem bodies name the missing permission (never the granted ones); tenant isolation holds
// against case and percent-encoding tricks; shadow routes are counted, logged and forwarded.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { shadowDecisionsTotal } from '../../../src/observability/metrics.js';
import { captureStream, type Listening, listen } from '../../helpers/authn.js';

const VIEWER = 'pcs_test_viewer_key_0123456789';
const ANALYST = 'pcs_test_analyst_key_0123456789';
const NO_TENANT = 'pcs_test_admin_key_0123456789';
const seen: string[] = [];
const logs = captureStream();
let upstream: Listening;
let app: App;
let dir: string;

beforeAll(async () => {
  upstream = await listen(
    createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      res.end('ok');
    }),
  );
  dir = await mkdtemp(join(tmpdir(), 'pcs-authz-int-'));
  await writeFile(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: v, hash: "${hashApiKey(VIEWER)}", tenant: acme, roles: [viewer] }
      - { id: a, hash: "${hashApiKey(ANALYST)}", tenant: acme, roles: [analyst] }
      - { id: root, hash: "${hashApiKey(NO_TENANT)}", roles: [admin] }
roles:
  viewer: { permissions: [reports:read] }
  analyst: { inherits: [viewer], permissions: [reports:export] }
  admin: { inherits: [analyst], permissions: ["*"] }
routes:
  - { name: reports, match: { methods: [GET], path: "/v1/tenants/{tenant}/reports/**" }, require: [reports:read], tenantParam: tenant }
  - { name: export, match: { methods: [POST], path: "/v1/tenants/{tenant}/export" }, require: [reports:export], tenantParam: tenant }
  - { name: new-export, match: { methods: [POST], path: "/v1/tenants/{tenant}/exports-v2" }, require: [reports:export], tenantParam: tenant, shadow: true }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    logger: createLogger({ level: 'info', destination: logs.stream }),
    watch: false,
  });
});

afterAll(async () => {
  await app?.shutdown();
  await upstream?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function call(method: string, path: string, key: string): Promise<{ status: number; body: Record<string, unknown> | string }> {
  const res = await fetch(`${app.proxyUrl}${path}`, { method, headers: { 'x-api-key': key } });
  const text = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? (JSON.parse(text) as Record<string, unknown>) : text };
}

async function shadowCount(route: string, decision: string): Promise<number> {
  return (await shadowDecisionsTotal.get()).values.find((v) => v.labels.route === route && v.labels.decision === decision)?.value ?? 0;
}

describe('authorization through the proxy', () => {
  it('forwards a read of the own tenant', async () => {
    seen.length = 0;
    expect((await call('GET', '/v1/tenants/acme/reports/q1', VIEWER)).status).toBe(200);
    expect(seen).toEqual(['GET /v1/tenants/acme/reports/q1']);
  });

  it('answers 403 PERMISSION_DENIED naming only the missing permission', async () => {
    seen.length = 0;
    const r = await call('POST', '/v1/tenants/acme/export', VIEWER);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'PERMISSION_DENIED', missing: 'reports:export' });
    expect(JSON.stringify(r.body)).not.toContain('reports:read');
    expect(seen).toEqual([]);
  });

  it.each([
    ['another tenant', '/v1/tenants/globex/reports/q1'],
    ['the own tenant in upper case', '/v1/tenants/ACME/reports/q1'],
    ['the own tenant partly upper-case and encoded', '/v1/tenants/ac%4De/reports/q1'],
  ])('denies %s with TENANT_MISMATCH', async (_name, path) => {
    seen.length = 0;
    const r = await call('GET', path, VIEWER);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'TENANT_MISMATCH' });
    expect(seen).toEqual([]);
  });

  it('decodes an encoded tenant segment once and forwards the path that was matched', async () => {
    seen.length = 0;
    expect((await call('GET', '/v1/tenants/ac%6De/reports/q1', VIEWER)).status).toBe(200);
    expect(seen).toEqual(['GET /v1/tenants/acme/reports/q1']);
  });

  it('never lets a principal without a tenant through a tenant route, whatever its roles', async () => {
    const r = await call('GET', '/v1/tenants/acme/reports/q1', NO_TENANT);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'TENANT_MISMATCH' });
  });

  it('forwards a shadow route the rule would deny, counting and logging the would-be decision', async () => {
    seen.length = 0;
    const before = await shadowCount('new-export', 'PERMISSION_DENIED');
    expect((await call('POST', '/v1/tenants/acme/exports-v2', VIEWER)).status).toBe(200);
    expect(seen).toEqual(['POST /v1/tenants/acme/exports-v2']);
    expect(await shadowCount('new-export', 'PERMISSION_DENIED')).toBe(before + 1);
    await new Promise((r) => setTimeout(r, 50));
    const line = logs
      .text()
      .split('\n')
      .find((l) => l.includes('"shadow decision"'));
    expect(line).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ route: 'new-export', decision: 'PERMISSION_DENIED', missing: 'reports:export' });
  });

  it('counts an allowing shadow decision too, and still denies cross-tenant shadow requests only on paper', async () => {
    const allowBefore = await shadowCount('new-export', 'allow');
    expect((await call('POST', '/v1/tenants/acme/exports-v2', ANALYST)).status).toBe(200);
    expect(await shadowCount('new-export', 'allow')).toBe(allowBefore + 1);
    const tenantBefore = await shadowCount('new-export', 'TENANT_MISMATCH');
    expect((await call('POST', '/v1/tenants/globex/exports-v2', ANALYST)).status).toBe(200);
    expect(await shadowCount('new-export', 'TENANT_MISMATCH')).toBe(tenantBefore + 1);
  });

  it('still requires authentication on a shadow route', async () => {
    const res = await fetch(`${app.proxyUrl}/v1/tenants/acme/exports-v2`, { method: 'POST' });
    expect(res.status).toBe(401);
  });
});
