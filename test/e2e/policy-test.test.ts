// `portcullis test` through the built CLI (`node dist/main.js test …`; npm test's pretest builds dist/).
import { beforeAll, describe, expect, it } from 'vitest';
import { REASON_CODES } from '../../src/core/reasons.js';
import { type Ran, requireBuiltCli, runCli } from '../helpers/cli.js';

const F = 'test/fixtures/authz';

const cli = (args: string[], env: Record<string, string> = {}): Promise<Ran> => runCli(args, env);

beforeAll(requireBuiltCli);

describe('portcullis test', () => {
  it('passes every test of a policy directory, with coverage', async () => {
    const r = await cli(['test', `${F}/basic`, '--coverage']);
    expect(r.stdout).toBe(['coverage: routes no test exercised: health', 'coverage: roles no test exercised: none', '16 passed, 0 failed', ''].join('\n'));
    expect(r.code).toBe(0);
  });

  it('finds the tests beside a policy file, and runs a single test file against its directory', async () => {
    expect((await cli(['test', `${F}/basic/policy.yaml`])).stdout).toBe('16 passed, 0 failed\n');
    expect((await cli(['test', `${F}/basic/policy.test.yaml`])).stdout).toBe('16 passed, 0 failed\n');
  });

  it('prints one line per failing test with its decision trace and exits 1', async () => {
    const r = await cli(['test', `${F}/failing`, '--coverage']);
    expect(r.stdout).toBe(
      [
        `FAIL ${F}/failing/policy.test.yaml:5 viewers reach the admin area (wrong on purpose): expected allow, got PERMISSION_DENIED (missing admin:*)`,
        '    canonical: canonical path /v1/admin/users',
        '    route: matched route admin',
        '    authenticate: authenticated test via test',
        '    authorize: requires admin:*: MISSING (granted: reports:read)',
        `FAIL ${F}/failing/policy.test.yaml:8 cross-tenant is allowed (wrong on purpose): expected allow, got TENANT_MISMATCH`,
        '    canonical: canonical path /v1/tenants/globex/reports/q1',
        '    route: matched route tenant-reports',
        '    authenticate: authenticated acme-analyst via apiKey',
        '    authorize: requires reports:read: granted by role analyst → viewer',
        '    authorize: tenant check: {tenant} is "globex", the principal\'s tenant is "acme": TENANT_MISMATCH',
        `FAIL ${F}/failing/policy.test.yaml:11 an unknown key id: expected allow, got error: no API key with id "no-such-key" under authentication.apiKeys.keys`,
        'coverage: routes no test exercised: health, tenant-exports',
        'coverage: roles no test exercised: admin',
        '1 passed, 3 failed',
        '',
      ].join('\n'),
    );
    expect(r.code).toBe(1);
  });

  it('reports invalid test files at file:line:col and exits 1', async () => {
    const r = await cli(['test', `${F}/invalid-tests`]);
    expect(r.stderr).toBe(
      [
        `${F}/invalid-tests/policy.test.yaml:4:21 tests[0].expect.deny: "TENANT_MISMATCHED" is not one of ${REASON_CODES.join(', ')} (did you mean "TENANT_MISMATCH"?)`,
        `${F}/invalid-tests/policy.test.yaml:6:39 tests[1].request.bearer: unknown key`,
        `${F}/invalid-tests/policy.test.yaml:9:14 tests[2].request: give at most one of as, apiKey, jwt, clientCert`,
        'invalid test files',
        '',
      ].join('\n'),
    );
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
  });

  it('fails a run that found no test, unless --allow-empty accepts it', async () => {
    const none = await cli(['test', 'test/fixtures/e2e/valid.yaml']);
    expect(none.code).toBe(1);
    expect(none.stdout).toBe('0 passed, 0 failed\n');
    expect(none.stderr).toContain('no tests found (no *.test.yaml files)');
    expect(none.stderr).toContain('--allow-empty');
    const allowed = await cli(['test', 'test/fixtures/e2e/valid.yaml', '--allow-empty']);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toBe('0 passed, 0 failed\n');
  });

  it('answers a missing PATH as validate does: file:line:col on stderr, exit 1', async () => {
    const r = await cli(['test', 'test/fixtures/no-such-policy']);
    expect(r.stderr).toBe('test/fixtures/no-such-policy:1:1 policy not found\ntest/fixtures/no-such-policy: invalid policy\n');
    expect(r.code).toBe(1);
  });

  it('prints JSON results for tools', async () => {
    const r = await cli(['test', `${F}/failing`, '--json']);
    const out = JSON.parse(r.stdout) as { passed: number; failed: number; tests: { name: string; passed: boolean; expected: string; actual: string }[] };
    expect(out.passed).toBe(1);
    expect(out.failed).toBe(3);
    expect(out.tests.map((t) => [t.passed, t.expected, t.actual])).toEqual([
      [true, 'allow', 'allow'],
      [false, 'allow', 'PERMISSION_DENIED'],
      [false, 'allow', 'TENANT_MISMATCH'],
      [false, 'allow', 'error'],
    ]);
    expect(r.code).toBe(1);
  });

  it('passes the examples of the policy-test reference (docs/policy-tests.md), covering every route and role', async () => {
    const r = await cli(['test', 'docs/examples/tests', '--coverage']);
    expect(r.stdout).toBe(['coverage: routes no test exercised: none', 'coverage: roles no test exercised: none', '14 passed, 0 failed', ''].join('\n'));
    expect(r.code).toBe(0);
  });

  it('passes the tests shipped with policies/', async () => {
    const r = await cli(['test', 'policies', '--coverage'], { DEMO_UPSTREAM: 'http://127.0.0.1:3000' });
    expect(r.stdout).toBe(['coverage: routes no test exercised: none', 'coverage: roles no test exercised: none', '22 passed, 0 failed', ''].join('\n'));
    expect(r.code).toBe(0);
  });
});
