// Cross-tenant operators through the built CLI: a role with `crossTenant: true` passes a route's
// tenant check for any tenant (its permissions still apply), each such pass leaves a
// `tenant.crossed` audit event naming both tenants and is counted; everyone else stays in their tenant.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const TENANT_USER = 'pcs_test_acme_user_0123456789';
const SUPPORT = 'pcs_test_support_op_0123456789';
const TIER2 = 'pcs_test_tier2_op_0123456789';
const SUPPORT_NO_PERMISSION = 'pcs_test_support_noperm_0123456789';

let upstream: OkUpstream;
let serving: Serving;
let auditFile: string;
let policyFile: string;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const events = (): Record<string, unknown>[] =>
  existsSync(auditFile)
    ? readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

async function until<T>(what: string, find: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const found = find();
    if (found !== undefined) return found;
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

beforeAll(async () => {
  requireBuiltCli();
  upstream = await okUpstream();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-cross-tenant-'));
  auditFile = path.join(dir, 'audit.ndjson');
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: acme-user, hash: "${hashApiKey(TENANT_USER)}", tenant: acme, roles: [viewer] }
      - { id: support-op, hash: "${hashApiKey(SUPPORT)}", tenant: vendor, roles: [support] }
      - { id: tier2-op, hash: "${hashApiKey(TIER2)}", roles: [tier2] }
      - { id: support-noperm, hash: "${hashApiKey(SUPPORT_NO_PERMISSION)}", tenant: vendor, roles: [cross-only] }
roles:
  viewer: { permissions: [reports:read] }
  support: { permissions: [reports:read], crossTenant: true }
  tier2: { inherits: [support] }
  cross-only: { crossTenant: true }
routes:
  - { name: reports, match: { path: "/v1/tenants/{tenant}/reports" }, require: [reports:read], tenantParam: tenant }
audit:
  sinks:
    - file: { path: audit.ndjson }
`,
  );
  policyFile = path.join(dir, 'policy.yaml');
  serving = await serveCli(policyFile);
});

afterAll(async () => {
  await serving?.stop();
  await upstream?.close();
});

const get = async (tenant: string, key: string) => (await fetch(`${serving.proxy}/v1/tenants/${tenant}/reports`, { headers: { 'x-api-key': key } })).status;

async function crossedCount(): Promise<number> {
  const text = await (await fetch(`${serving.admin}/metrics`)).text();
  const m = /^portcullis_cross_tenant_total\{route="reports"\} (\d+)$/m.exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('cross-tenant roles', () => {
  it('keeps an ordinary caller inside its own tenant', async () => {
    expect(await get('acme', TENANT_USER)).toBe(200);
    expect(await get('globex', TENANT_USER)).toBe(403);
  });

  it('lets a cross-tenant operator into any tenant and audits each pass with both tenants', async () => {
    const before = await crossedCount();
    expect(await get('acme', SUPPORT)).toBe(200);
    expect(await get('globex', SUPPORT)).toBe(200);
    expect(await crossedCount()).toBe(before + 2);
    const crossed = await until('two tenant.crossed events', () => {
      const found = events().filter((e) => e.type === 'tenant.crossed');
      return found.length >= 2 ? found : undefined;
    });
    expect(crossed.map((e) => e.detail)).toEqual([
      expect.objectContaining({ route: 'reports', subject: 'support-op', keyId: 'support-op', callerTenant: 'vendor', targetTenant: 'acme', role: 'support' }),
      expect.objectContaining({ route: 'reports', subject: 'support-op', keyId: 'support-op', callerTenant: 'vendor', targetTenant: 'globex', role: 'support' }),
    ]);
    expect(crossed[0]!.severity).toBe('warning');
    // The request event of the same request carries the same id.
    const requestId = (crossed[0]!.detail as { requestId: string }).requestId;
    await until('the request event', () => events().find((e) => e.type === 'request' && (e.request as { id: string }).id === requestId));
  });

  it('makes a role that inherits a cross-tenant role cross-tenant too, even without a tenant of its own', async () => {
    expect(await get('initech', TIER2)).toBe(200);
    const e = await until('the tier2 event', () => events().find((x) => x.type === 'tenant.crossed' && (x.detail as { subject: string }).subject === 'tier2-op'));
    expect(e.detail).toMatchObject({ callerTenant: null, targetTenant: 'initech', role: 'tier2 → support' });
  });

  it('still requires the route permissions of a cross-tenant operator', async () => {
    const res = await fetch(`${serving.proxy}/v1/tenants/acme/reports`, { headers: { 'x-api-key': SUPPORT_NO_PERMISSION } });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { code: string }).code).toBe('PERMISSION_DENIED');
  });

  it('explains a cross-tenant pass with the role that allows it', async () => {
    const r = await runCli(['explain', policyFile, '--path', '/v1/tenants/globex/reports', '--as', 'vendor:tier2']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`tenant check: {tenant} is "globex", the principal's tenant is "vendor"; allowed across tenants by role tier2 → support`);
  });

  it('warns when a JWT issuer could hand out a cross-tenant role through its roles claim', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-cross-tenant-jwt-'));
    const file = path.join(dir, 'policy.yaml');
    writeFileSync(
      file,
      `version: 1
upstreams: { app: { url: "http://127.0.0.1:1" } }
authentication:
  jwt:
    - { name: idp, issuer: https://idp.example, audience: portcullis, secret: "${'s'.repeat(32)}", algorithms: [HS256], claims: { roles: groups } }
roles:
  support: { permissions: [reports:read], crossTenant: true }
routes:
  - { name: reports, match: { path: "/v1/tenants/{tenant}/reports" }, require: [reports:read], tenantParam: tenant }
`,
    );
    const r = await runCli(['validate', file]);
    expect(r.code).toBe(0);
    expect(r.stdout + r.stderr).toContain('tokens of issuer "idp" may carry a cross-tenant role (support) in their roles claim');
  });
});
