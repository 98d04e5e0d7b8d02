// `portcullis explain` through the built CLI (`node dist/main.js explain …`).
import { beforeAll, describe, expect, it } from 'vitest';
import { type Ran, requireBuiltCli, runCli } from '../helpers/cli.js';

const P = 'test/fixtures/authz/basic';

const cli = (args: string[]): Promise<Ran> => runCli(args);

beforeAll(requireBuiltCli);

describe('portcullis explain', () => {
  it('traces an allowed request: routes tried, principal, which role granted the permission, tenant check', async () => {
    const r = await cli(['explain', P, '--method', 'GET', '--path', '/v1/tenants/acme/reports/q1', '--as', 'acme:admin']);
    expect(r.stdout).toBe(
      [
        'request: GET /v1/tenants/acme/reports/q1 (host localhost)',
        'canonical path: /v1/tenants/acme/reports/q1',
        'routes:',
        '  no match health: path /v1/tenants/acme/reports/q1 does not match /healthz',
        '  match    tenant-reports: GET /v1/tenants/acme/reports/q1 matches /v1/tenants/{tenant}/reports/**',
        'authenticate: authenticated explain via test',
        'principal: explain, tenant acme, roles admin, via test',
        'authorize: requires reports:read: granted by role admin → analyst → viewer',
        'authorize: tenant check: {tenant} is "acme", matches the principal\'s tenant; allowed',
        'decision: allow',
        '',
      ].join('\n'),
    );
    expect(r.code).toBe(0);
  });

  it('shows the canonical path of an encoded tenant segment and denies another case of the tenant', async () => {
    const encoded = await cli(['explain', P, '--path', '/v1/tenants/ac%6De/reports/q1', '--as', 'acme:viewer']);
    expect(encoded.stdout).toContain('canonical path: /v1/tenants/acme/reports/q1\n');
    expect(encoded.stdout.endsWith('decision: allow\n')).toBe(true);
    const upper = await cli(['explain', P, '--path', '/v1/tenants/ACME/reports/q1', '--as', 'acme:viewer']);
    expect(upper.stdout).toContain('authorize: tenant check: {tenant} is "ACME", the principal\'s tenant is "acme": TENANT_MISMATCH\n');
    expect(upper.stdout.endsWith('decision: deny TENANT_MISMATCH (403)\n')).toBe(true);
  });

  it('names the missing permission and the would-be decision of a shadow route', async () => {
    const r = await cli(['explain', P, '--method', 'POST', '--path', '/v1/tenants/acme/exports', '--as', 'acme:viewer']);
    expect(r.stdout).toBe(
      [
        'request: POST /v1/tenants/acme/exports (host localhost)',
        'canonical path: /v1/tenants/acme/exports',
        'routes:',
        '  no match health: path /v1/tenants/acme/exports does not match /healthz',
        '  no match tenant-reports: method POST is not one of GET, HEAD',
        '  match    tenant-exports: POST /v1/tenants/acme/exports matches /v1/tenants/{tenant}/exports',
        'authenticate: authenticated explain via test',
        'principal: explain, tenant acme, roles viewer, via test',
        'authorize: requires reports:export: MISSING (granted: reports:read)',
        'authorize: shadow route: would deny (PERMISSION_DENIED); not enforced, continuing',
        'shadow decision: PERMISSION_DENIED',
        'decision: allow',
        '',
      ].join('\n'),
    );
  });

  it('explains a request without credentials and one that matches no route', async () => {
    const anon = await cli(['explain', P, '--path', '/v1/admin/users']);
    expect(anon.stdout.endsWith('decision: deny AUTH_MISSING (401)\n')).toBe(true);
    const none = await cli(['explain', P, '--path', '/nope']);
    expect(none.stdout).toContain('  no match admin: path /nope does not match /v1/admin/**\n');
    expect(none.stdout.endsWith('decision: deny ROUTE_NOT_FOUND (404)\n')).toBe(true);
  });

  it('authenticates a real credential given with --header', async () => {
    const r = await cli(['explain', P, '--path', '/v1/tenants/acme/reports/q1', '--header', 'x-api-key: pcs_fixture_real_key']);
    expect(r.stdout).toContain('authenticate: authenticated real-key via apiKey\nprincipal: real-key, tenant acme, roles viewer, via apiKey\n');
    expect(r.stdout.endsWith('decision: allow\n')).toBe(true);
    const wrong = await cli(['explain', P, '--path', '/v1/tenants/acme/reports/q1', '--header', 'x-api-key: not-a-key']);
    expect(wrong.stdout.endsWith('decision: deny AUTH_INVALID (401)\n')).toBe(true);
    // A dynamic key lives in the store, which explain does not read: it says so rather than leave
    // the reader to think the key was revoked.
    expect(wrong.stdout).toContain("note: explain knows only the policy's static keys");
  });

  it('says how an --as principal was authenticated in the same words as the principal line', async () => {
    const r = await cli(['explain', P, '--path', '/v1/tenants/acme/reports/q1', '--as', 'acme:viewer']);
    expect(r.stdout).toContain('authenticate: authenticated explain via test\nprincipal: explain, tenant acme, roles viewer, via test\n');
    expect(r.stdout).not.toContain('via apiKey');
  });

  it('prints JSON with the missing permission, never the granted ones in the decision', async () => {
    const r = await cli(['explain', P, '--path', '/v1/admin/x', '--as', 'acme:viewer', '--json']);
    const out = JSON.parse(r.stdout) as { decision: string; status: number; missing: string; route: string; canonicalPath: string };
    expect(out).toMatchObject({ decision: 'PERMISSION_DENIED', status: 403, missing: 'admin:*', route: 'admin', canonicalPath: '/v1/admin/x' });
  });
});
