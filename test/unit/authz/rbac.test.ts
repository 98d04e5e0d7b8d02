import { IncomingMessage } from 'node:http';
import { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createAuthorizeStage } from '../../../src/authz/authorize.stage.js';
import { coveringGrants } from '../../../src/authz/permissions.js';
import { GrantResolver } from '../../../src/authz/rbac.js';
import type { RequestContext } from '../../../src/core/context.js';
import type { Plan } from '../../../src/core/plan.js';
import type { Principal } from '../../../src/core/principal.js';
import type { Outcome } from '../../../src/core/stage.js';
import { registry, shadowDecisionsTotal } from '../../../src/observability/metrics.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { contextOf } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

const HEAD = `version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
authentication:
  apiKeys:
    keys:
      - { id: k1, hash: "sha256:${'a'.repeat(64)}", tenant: acme, roles: [viewer, analyst, admin, ops, wide, reader] }
`;
const ROLES = `roles:
  viewer: { permissions: [reports:read] }
  analyst: { inherits: [viewer], permissions: [reports:export] }
  admin: { inherits: [analyst], permissions: ["admin:*"] }
  ops: { permissions: ["*:read"] }
  wide: { permissions: ["*"] }
  reader: { permissions: ["reports:*"] }
`;
const ROUTES = `routes:
  - { name: read, match: { path: "/v1/tenants/{tenant}/reports/**" }, require: [reports:read], tenantParam: tenant }
  - { name: export, match: { path: "/v1/tenants/{tenant}/exports" }, require: [reports:export], tenantParam: tenant, shadow: true }
  - { name: admin, match: { path: "/v1/admin/**" }, require: ["admin:*"] }
  - { name: both, match: { path: "/both" }, require: [reports:read, billing:read] }
  - { name: open, match: { path: "/open" } }
`;

let planPromise: Promise<Plan> | undefined;
const plan = (): Promise<Plan> => (planPromise ??= planFrom(HEAD + ROLES + ROUTES));

function principal(roles: string[], permissions: string[] = [], tenant: string | null = 'acme'): Principal {
  return { subject: 's', tenant: tenant ?? undefined, roles, permissions, keyId: undefined, via: 'test' };
}

async function decide(path: string, p: Principal | undefined): Promise<{ out: Outcome; ctx: RequestContext }> {
  const pl = await plan();
  const req = new IncomingMessage(new Socket());
  const ctx = contextOf(req, pl);
  ctx.trace = [];
  ctx.path = path;
  const m = pl.router.find('GET', '', path)!;
  ctx.route = m.route;
  ctx.params = m.params;
  ctx.principal = p;
  return { out: await createAuthorizeStage().run(ctx), ctx };
}

async function compileErrors(yaml: string): Promise<string[]> {
  try {
    await planFrom(yaml);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.path}: ${d.message}`);
    throw err;
  }
  return [];
}

describe('permission matching', () => {
  it.each([
    ['reports:read', ['reports:read', 'reports:*', '*:read', '*']],
    ['reports:*', ['reports:*', '*']],
    ['*:read', ['*:read', '*']],
    ['*', ['*']],
    ['*:*', ['*']],
  ])('a requirement of %s is covered by exactly %j', (req, covers) => {
    expect(coveringGrants(req)).toEqual(covers);
  });
});

describe('RBAC decisions', () => {
  it.each([
    ['a direct role grant', '/v1/tenants/acme/reports/q1', ['viewer'], [], null],
    ['a grant inherited two levels deep', '/v1/tenants/acme/reports/q1', ['admin'], [], null],
    ['a resource wildcard (reports:*)', '/v1/tenants/acme/reports/q1', ['reader'], [], null],
    ['an action wildcard (*:read)', '/v1/tenants/acme/reports/q1', ['ops'], [], null],
    ['the full wildcard', '/v1/admin/x', ['wide'], [], null],
    ['a direct permission on the credential', '/v1/tenants/acme/reports/q1', [], ['reports:read'], null],
    ['grants combined from several roles', '/both', ['viewer', 'ops'], [], null],
    ['a role and a direct permission together', '/both', ['viewer'], ['billing:read'], null],
    ['no roles at all', '/v1/tenants/acme/reports/q1', [], [], 'reports:read'],
    ['only one of two required permissions', '/both', ['viewer'], [], 'billing:read'],
    ['a concrete grant against a wildcard requirement', '/v1/admin/x', ['viewer'], ['admin:read'], 'admin:*'],
    ['an undeclared role', '/v1/tenants/acme/reports/q1', ['ghost'], [], 'reports:read'],
  ])('decides %s', async (_name, path, roles, perms, missing) => {
    const { out, ctx } = await decide(path, principal(roles, perms));
    if (missing === null) expect(out).toBeNull();
    else {
      expect(out?.code).toBe('PERMISSION_DENIED');
      expect(out?.extra).toEqual({ missing });
      expect(ctx.permission).toBe(missing);
    }
  });

  it('names which role granted an inherited permission in the trace', async () => {
    const { ctx } = await decide('/v1/tenants/acme/reports/q1', principal(['admin']));
    expect(ctx.trace!.map((s) => s.message)).toContain('requires reports:read: granted by role admin → analyst → viewer');
  });

  it('lets a route without require or tenantParam through', async () => {
    expect((await decide('/open', principal([]))).out).toBeNull();
  });

  it('reuses one grant set for a repeated role combination', () => {
    const roles = new Map([['viewer', new Map([['reports:read', 'viewer']])]]);
    const g = new GrantResolver(roles, 2);
    const a = g.grantsOf(principal(['viewer']));
    expect(g.grantsOf(principal(['viewer']))).toBe(a);
    g.grantsFor(['x'], []);
    g.grantsFor(['y'], []);
    expect(g.cached).toBe(2);
  });
});

describe('tenant isolation', () => {
  it.each([
    ['the own tenant', '/v1/tenants/acme/reports/q1', 'acme', null],
    ['another tenant', '/v1/tenants/globex/reports/q1', 'acme', 'TENANT_MISMATCH'],
    ['the tenant in another case', '/v1/tenants/ACME/reports/q1', 'acme', 'TENANT_MISMATCH'],
    ['an upper-case principal tenant against a lower-case path', '/v1/tenants/acme/reports/q1', 'ACME', 'TENANT_MISMATCH'],
    ['a principal without a tenant', '/v1/tenants/acme/reports/q1', null, 'TENANT_MISMATCH'],
  ])('decides %s', async (_name, path, tenant, code) => {
    const { out } = await decide(path, principal(['viewer'], [], tenant));
    expect(out === null ? null : out.code).toBe(code);
  });
});

describe('shadow routes', () => {
  it('records the would-be denial and lets the request through', async () => {
    const before =
      (await registry.getSingleMetric('portcullis_shadow_decisions_total')!.get()).values.find((v) => v.labels.route === 'export' && v.labels.decision === 'PERMISSION_DENIED')?.value ?? 0;
    const { out, ctx } = await decide('/v1/tenants/acme/exports', principal(['viewer']));
    expect(out).toBeNull();
    expect(ctx.shadowDecision).toBe('PERMISSION_DENIED');
    const after = (await shadowDecisionsTotal.get()).values.find((v) => v.labels.route === 'export' && v.labels.decision === 'PERMISSION_DENIED')!.value;
    expect(after).toBe(before + 1);
  });

  it('records allow when the rule would allow', async () => {
    const { out, ctx } = await decide('/v1/tenants/acme/exports', principal(['analyst']));
    expect(out).toBeNull();
    expect(ctx.shadowDecision).toBe('allow');
  });
});

describe('role compilation', () => {
  it('refuses an inheritance cycle, naming the chain', async () => {
    const errors = await compileErrors(
      `${HEAD}roles:\n  a: { inherits: [b] }\n  b: { inherits: [c] }\n  c: { inherits: [a] }\n  viewer: {}\n  analyst: {}\n  admin: {}\n  ops: {}\n  wide: {}\n  reader: {}\n`,
    );
    expect(errors).toEqual(['roles.c.inherits[0]: inheritance cycle: roles.a → b → c → a']);
  });

  it('refuses a role inheriting itself', async () => {
    expect(await compileErrors(`${HEAD}${ROLES}  self: { inherits: [self] }\n`)).toEqual(['roles.self.inherits[0]: inheritance cycle: roles.self → self']);
  });

  it('refuses an unknown parent role with a suggestion', async () => {
    expect(await compileErrors(`${HEAD}${ROLES}  boss: { inherits: [admn] }\n`)).toEqual(['roles.boss.inherits[0]: roles.boss → admn: role "admn" is not declared (did you mean "admin"?)']);
  });

  it('warns about a required permission no role grants, with a suggestion', async () => {
    const p = await planFrom(`${HEAD}roles:\n  viewer: { permissions: [reports:read] }\nroutes:\n  - { name: r, match: { path: /r }, require: [report:read] }\n`);
    expect(p.warnings.map((d) => `${d.path}: ${d.message}`)).toContain('routes[0].require[0]: no role grants "report:read" (did you mean "reports:read"?)');
  });

  it('warns about a role nothing uses', async () => {
    const p = await planFrom(`${HEAD}${ROLES}  orphan: { permissions: [x:y] }\n`);
    expect(p.warnings.map((d) => `${d.path}: ${d.message}`)).toContain('roles.orphan: role "orphan" is not used: no API key has it, no role inherits it and no JWT issuer maps a roles claim');
  });

  it('refuses tenantParam naming no path parameter', async () => {
    const errors = await compileErrors(`${HEAD}${ROLES}routes:\n  - { name: r, match: { path: "/t/{tenant}" }, tenantParam: tenat }\n`);
    expect(errors).toEqual(['routes[0].tenantParam: the path pattern has no parameter {tenat} (did you mean "tenant"?)']);
  });
});
