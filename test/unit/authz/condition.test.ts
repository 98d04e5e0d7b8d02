// Route conditions (`when`, CEL): checked at load with positions, decided by the real engine
// (through simulate, as `test` and `explain` do) over principal, request and time.
import { describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { type SimRequest, simulate } from '../../../src/simulate/simulate.js';
import { planFrom } from '../../helpers/plan.js';

const policy = (when: string, extra = '') => `version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
authentication:
  jwt:
    - { name: idp, issuer: https://idp.example, audience: portcullis, secret: "${'s'.repeat(32)}", algorithms: [HS256], claims: { tenant: org, roles: roles } }
roles:
  viewer: { permissions: [reports:read] }
routes:
  - name: reports
    match: { path: "/v1/tenants/{tenant}/reports" }
    require: [reports:read]
    when: ${JSON.stringify(when)}
${extra}`;

async function errorsOf(yaml: string): Promise<string[]> {
  try {
    await planFrom(yaml);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`);
    throw err;
  }
  return [];
}

const jwt = (claims: Record<string, unknown>): SimRequest['identity'] => ({ jwt: { claims: { org: 'acme', roles: ['viewer'], ...claims } } });

async function decide(plan: Plan, request: Partial<SimRequest> = {}) {
  return simulate(plan, { method: 'GET', path: '/v1/tenants/acme/reports', identity: jwt({ email_verified: true }), ...request });
}

describe('route conditions at load', () => {
  it('points a syntax error at the when value and the column inside the expression', async () => {
    const errors = await errorsOf(policy("principal.subject == 'a' &&"));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^12:11 routes\[0\]\.when: the condition does not parse: .*\(at column 26 of the expression\)$/);
  });

  it.each([
    ['principal.subjet == "a"', 'principal has no field "subjet" (did you mean "subject"?)'],
    ['requst.method == "GET"', 'undeclared reference to "requst" (did you mean "request"?)'],
    ['principal.subject.startsWit("a")', 'unknown function "startsWit" (did you mean "startsWith"?)'],
    ['principal.subject', 'a condition must be true or false, this one is a string'],
    ['principal.subject == 1', 'compares a string with an int: never equal'],
    ["request.headers['authorization'] == 'x'", 'credential and identity headers are not visible to conditions'],
    ["request.headers['X-Env'] == 'prod'", 'header names are lower case here, write "x-env"'],
    ['request.headers["x-api-key"] != ""', 'credential and identity headers are not visible to conditions'],
    ['request.headers.cookie == ""', 'credential and identity headers are not visible to conditions'],
    ['principal.tenant && true', 'the operands of && must be bool, not string'],
  ])('refuses %s', async (when, message) => {
    const errors = await errorsOf(policy(when));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
    expect(errors[0]).toMatch(/^12:11 routes\[0\]\.when: /);
  });

  it('refuses a condition that reads the principal on a public route', async () => {
    const errors = await errorsOf(`version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
routes:
  - { name: open, match: { path: "/open" }, public: true, when: "principal.subject == 'x'" }
`);
    expect(errors).toEqual([expect.stringContaining('a public route authenticates nobody')]);
  });

  it('accepts a condition on a public route that reads only the request and the time', async () => {
    const plan = await planFrom(`version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
routes:
  - { name: open, match: { path: "/open" }, public: true, when: "request.method == 'GET' && time > timestamp('2020-01-01T00:00:00Z')" }
`);
    expect((await simulate(plan, { method: 'GET', path: '/open' })).decision).toBe('allow');
    expect((await simulate(plan, { method: 'POST', path: '/open' })).decision).toBe('CONDITION_FAILED');
  });

  it('compiles no condition table for a policy without conditions', async () => {
    const plan = await planFrom(`version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
routes:
  - { name: open, match: { path: "/open" }, public: true }
`);
    expect(plan.conditions).toBeUndefined();
  });
});

describe('route conditions at request time', () => {
  it('allows when the expression is true and denies with CONDITION_FAILED when it is false', async () => {
    const plan = await planFrom(policy('principal.claims.email_verified == true'));
    expect((await decide(plan)).decision).toBe('allow');
    const denied = await decide(plan, { identity: jwt({ email_verified: false }) });
    expect(denied.decision).toBe('CONDITION_FAILED');
    expect(denied.status).toBe(403);
    expect(denied.trace).toContainEqual({ stage: 'condition', message: 'when principal.claims.email_verified == true → false: CONDITION_FAILED' });
  });

  it('reads method, path, params, headers, roles, tenant and time', async () => {
    const plan = await planFrom(
      policy(
        "request.method == 'GET' && request.path.startsWith('/v1/') && request.params.tenant == principal.tenant && request.headers['x-env'] == 'prod' && 'viewer' in principal.roles && time.getFullYear() >= 2024",
      ),
    );
    expect((await decide(plan, { headers: { 'X-Env': 'prod' } })).decision).toBe('allow');
    expect((await decide(plan, { headers: { 'X-Env': 'dev' } })).decision).toBe('CONDITION_FAILED');
  });

  it('does not show credential headers to a condition that iterates the headers', async () => {
    const plan = await planFrom(policy("!request.headers.exists(h, h == 'authorization')"));
    const r = await decide(plan);
    expect(r.decision).toBe('allow');
  });

  it('fails closed when the expression cannot be evaluated, and says why in the trace', async () => {
    const plan = await planFrom(policy('principal.claims.level > 2'));
    const r = await decide(plan);
    expect(r.decision).toBe('CONDITION_FAILED');
    expect(r.deny?.detail).toContain('could not be evaluated');
    expect(r.trace.at(-1)?.message).toMatch(/^when principal\.claims\.level > 2 → evaluation failed: .*level/);
  });

  it('fails closed when a dyn expression does not come out as a bool', async () => {
    const plan = await planFrom(policy('principal.claims.level'));
    const r = await decide(plan, { identity: jwt({ level: 'high' }) });
    expect(r.decision).toBe('CONDITION_FAILED');
    expect(r.trace.at(-1)?.message).toContain('the result is not true or false (a string)');
  });

  it('is checked after authorization: a missing permission is still PERMISSION_DENIED', async () => {
    const plan = await planFrom(policy('false'));
    expect((await decide(plan, { identity: jwt({ roles: [] }) })).decision).toBe('PERMISSION_DENIED');
  });
});
