// What `validate`, `test` and `explain` report about a policy, through the built CLI: every error
// of one run (schema, env: and semantic together, in file order), protected routes that no
// authentication method can serve, and placeholders for unset values the simulation never uses.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli } from '../helpers/cli.js';

const dir = mkdtempSync(join(tmpdir(), 'pcs-diagnostics-'));
const UNSET = ['PCS_DIAG_UNSET_URL', 'PCS_DIAG_UNSET_REDIS', 'PCS_DIAG_UNSET_HOOK', 'PCS_DIAG_JWT_SECRET'];

function write(name: string, text: string): string {
  writeFileSync(join(dir, name), text);
  return join(dir, name);
}

beforeAll(requireBuiltCli);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('portcullis validate', () => {
  it('refuses protected routes no authentication method can serve, at file:line:col, like the old gateway example', async () => {
    const p = write(
      'no-authn.yaml',
      `version: 1
upstreams:
  reports: { url: http://127.0.0.1:9 }
roles: { billing: { permissions: [billing:manage] } }
routes:
  - name: health
    match: { path: /healthz }
    public: true
  - name: tenant-reports
    match: { methods: [GET, HEAD], path: "/v1/tenants/{tenant}/reports/**" }
  - name: tenant-billing
    match: { path: "/v1/tenants/{tenant}/billing/**" }
    require: [billing:manage]
`,
    );
    const r = await runCli(['validate', p]);
    expect(r.code).toBe(1);
    const tail =
      'no authentication method is configured: add authentication.apiKeys (static keys, or {} for keys created through the admin API), authentication.jwt or authentication.mtls, or mark the route public: true';
    expect(r.stderr.split('\n').filter((l) => !l.includes(' warning: '))).toEqual([
      `${p}:9:5 routes[1]: route "tenant-reports" needs credentials, but ${tail}`,
      `${p}:13:14 routes[2].require: route "tenant-billing" needs credentials, but ${tail}`,
      `${p}: invalid policy (2 errors)`,
      '',
    ]);
  });

  it('prints schema, env: and semantic errors of one policy in one run, in file order, and exits 1', async () => {
    const p = write(
      'every-kind.yaml',
      `version: 1
upstreams:
  app:
    url: env:PCS_DIAG_UNSET_URL
    timeouts: { connect: soon }
  other: { url: http://127.0.0.1:9 }
routes:
  - nme: typo
    match: { path: /t }
  - name: reports
    match: { path: "/v1/**" }
    upstream: nowhere
    public: true
  - name: private
    match: { path: "/p/**" }
    upstream: other
`,
    );
    const r = await runCli(['validate', p], {}, UNSET);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([
      `${p}:4:10 upstreams.app.url: environment variable PCS_DIAG_UNSET_URL is not set`,
      `${p}:5:26 upstreams.app.timeouts.connect: expected a duration such as 250ms, 30s, 5m, 1h or 1d`,
      `${p}:8:5 routes[0].name: required`,
      `${p}:8:5 routes[0].nme: unknown key (did you mean "name"?)`,
      `${p}:12:15 routes[1].upstream: unknown upstream "nowhere"`,
      expect.stringMatching(new RegExp(`^${p}:14:5 routes\\[2\\]: route "private" needs credentials, but no authentication method is configured`)),
      `${p}: invalid policy (6 errors)`,
      '',
    ]);
  });
});

describe('portcullis test and explain with unset env: values', () => {
  const policy = `version: 1
upstreams:
  app: { url: env:PCS_DIAG_UNSET_URL }
store: { url: env:PCS_DIAG_UNSET_REDIS }
authentication:
  jwt: [{ name: idp, issuer: https://idp.example, audience: api, algorithms: [HS256], secret: env:PCS_DIAG_JWT_SECRET }]
audit:
  sinks: [{ webhook: { url: env:PCS_DIAG_UNSET_HOOK } }]
routes:
  - { name: health, match: { path: /healthz }, public: true }
  - { name: api, match: { path: "/api/**" } }
`;
  const tests = `tests:
  - name: health is public
    request: { method: GET, path: /healthz }
    expect: allow
  - name: the api needs credentials
    request: { method: GET, path: /api/x }
    expect: { deny: AUTH_MISSING }
`;
  let policyDir: string;
  beforeAll(() => {
    policyDir = join(dir, 'simulated');
    mkdirSync(policyDir, { recursive: true });
    writeFileSync(join(policyDir, 'policy.yaml'), policy);
    writeFileSync(join(policyDir, 'policy.test.yaml'), tests);
  });
  const secret = { PCS_DIAG_JWT_SECRET: 'k'.repeat(40) };
  const unsetBut = UNSET.filter((n) => n !== 'PCS_DIAG_JWT_SECRET');

  it('test passes with placeholders for the upstream, store and audit URLs, and names each one', async () => {
    const r = await runCli(['test', policyDir], secret, unsetBut);
    expect(r.stdout).toBe('2 passed, 0 failed\n');
    expect(r.code).toBe(0);
    const f = join(policyDir, 'policy.yaml');
    expect(r.stderr.split('\n').filter((l) => l !== '')).toEqual([
      `${f}:3:15 warning: upstreams.app.url: environment variable PCS_DIAG_UNSET_URL is not set: a placeholder stands in (this command does not use the value)`,
      `${f}:4:15 warning: store.url: environment variable PCS_DIAG_UNSET_REDIS is not set: a placeholder stands in (this command does not use the value)`,
      `${f}:8:29 warning: audit.sinks[0].webhook.url: environment variable PCS_DIAG_UNSET_HOOK is not set: a placeholder stands in (this command does not use the value)`,
    ]);
  });

  it('test refuses the policy when a value the decisions use (a JWT secret) is unset', async () => {
    const r = await runCli(['test', policyDir], {}, UNSET);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`${join(policyDir, 'policy.yaml')}:6:95 authentication.jwt[0].secret: environment variable PCS_DIAG_JWT_SECRET is not set\n`);
    expect(r.stderr).not.toContain('PCS_DIAG_UNSET_URL is not set\n');
  });

  it('explain decides with the same placeholders, and refuses without the JWT secret', async () => {
    const ok = await runCli(['explain', policyDir, '--path', '/api/x'], secret, unsetBut);
    expect(ok.code).toBe(0);
    expect(ok.stdout.endsWith('decision: deny AUTH_MISSING (401)\n')).toBe(true);
    expect(ok.stderr).toContain('upstreams.app.url: environment variable PCS_DIAG_UNSET_URL is not set: a placeholder stands in');
    const refused = await runCli(['explain', policyDir, '--path', '/api/x'], {}, UNSET);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('authentication.jwt[0].secret: environment variable PCS_DIAG_JWT_SECRET is not set');
  });

  it('says so in --help', async () => {
    for (const command of ['test', 'explain']) {
      const help = await runCli([command, '--help']);
      expect(help.stdout.replace(/\s+/g, ' ')).toContain('may be unset: a placeholder stands in and a warning names it.');
      expect(help.stdout.replace(/\s+/g, ' ')).toContain('(JWT secrets and keys, API key hashes, roles) must be set: unset, the policy is refused.');
    }
  });
});
