// Route conditions (`when`, CEL) through the built CLI: `serve` decides by them on real sockets and
// counts each result; `validate` points a bad expression at its file:line:col.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

const ACME = 'pcs_test_acme_cond_0123456789';
const GLOBEX = 'pcs_test_globex_cond_0123456789';

let upstream: OkUpstream;
let serving: Serving;
let dir: string;

beforeAll(async () => {
  requireBuiltCli();
  upstream = await okUpstream();
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-conditions-'));
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "${upstream.url}" } }
authentication:
  apiKeys:
    keys:
      - { id: acme, hash: "${hashApiKey(ACME)}", tenant: acme, roles: [viewer] }
      - { id: globex, hash: "${hashApiKey(GLOBEX)}", tenant: globex, roles: [viewer] }
roles:
  viewer: { permissions: [reports:read] }
routes:
  - name: reports
    match: { path: "/v1/reports" }
    require: [reports:read]
    when: "principal.tenant == 'acme' && request.headers['x-env'] == 'prod'"
  - name: typed
    match: { path: "/v1/typed" }
    require: [reports:read]
    when: "principal.claims.level > 1"
`,
  );
  serving = await serveCli(path.join(dir, 'policy.yaml'));
});

afterAll(async () => {
  await serving?.stop();
  await upstream?.close();
});

async function call(p: string, key: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${serving.proxy}${p}`, { headers: { 'x-api-key': key, ...headers } });
  const body = await res.text();
  return { status: res.status, body: res.headers.get('content-type')?.includes('json') ? (JSON.parse(body) as { code: string; detail?: string }) : body };
}

const counted = async (route: string, result: string): Promise<number> => {
  const m = new RegExp(`^portcullis_conditions_total\\{route="${route}",result="${result}"\\} (\\d+)$`, 'm').exec(await (await fetch(`${serving.admin}/metrics`)).text());
  return m === null ? 0 : Number(m[1]);
};

describe('route conditions through serve', () => {
  it('forwards when the condition holds and answers 403 CONDITION_FAILED when it does not', async () => {
    expect(await call('/v1/reports', ACME, { 'X-Env': 'prod' })).toEqual({ status: 200, body: 'ok' });
    const wrongHeader = await call('/v1/reports', ACME, { 'X-Env': 'dev' });
    expect(wrongHeader.status).toBe(403);
    expect(wrongHeader.body).toMatchObject({ code: 'CONDITION_FAILED' });
    expect((await call('/v1/reports', GLOBEX, { 'X-Env': 'prod' })).status).toBe(403);
    expect(await counted('reports', 'true')).toBe(1);
    expect(await counted('reports', 'false')).toBe(2);
  });

  it('fails closed, without quoting the evaluator, when the expression cannot be evaluated', async () => {
    const r = await call('/v1/typed', ACME);
    expect(r.status).toBe(403);
    expect(r.body).toMatchObject({ code: 'CONDITION_FAILED', detail: expect.stringContaining('could not be evaluated') });
    expect(JSON.stringify(r.body)).not.toContain('level');
    expect(await counted('typed', 'error')).toBe(1);
  });

  it('refuses to validate a policy whose condition names an unknown field, at its file:line:col', async () => {
    const bad = path.join(dir, 'bad.yaml');
    writeFileSync(
      bad,
      `version: 1
upstreams: { app: { url: "http://127.0.0.1:1" } }
authentication: { apiKeys: {} }
routes:
  - name: r
    match: { path: "/r" }
    when: "principal.tennant == 'acme'"
`,
    );
    const r = await runCli(['validate', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${bad}:7:11`);
    expect(r.stderr).toContain('principal has no field "tennant" (did you mean "tenant"?)');
    expect(r.stderr).toContain('(at column 10 of the expression)');
  });

  it('shows the expression and its value in explain, and lets a policy test expect CONDITION_FAILED', async () => {
    const policy = path.join(dir, 'policy.yaml');
    const explained = await runCli(['explain', policy, '--path', '/v1/reports', '--as', 'acme:viewer', '--header', 'x-env: staging']);
    expect(explained.code).toBe(0);
    expect(explained.stdout).toContain(`condition: when principal.tenant == 'acme' && request.headers['x-env'] == 'prod' → false: CONDITION_FAILED`);
    expect(explained.stdout).toContain('decision: deny CONDITION_FAILED (403)');
    writeFileSync(
      path.join(dir, 'policy.test.yaml'),
      `tests:
  - name: production traffic of acme passes the condition
    request: { method: GET, path: /v1/reports, headers: { x-env: prod }, as: { tenant: acme, roles: [viewer] } }
    expect: allow
  - name: another tenant is refused by the condition
    request: { method: GET, path: /v1/reports, headers: { x-env: prod }, as: { tenant: globex, roles: [viewer] } }
    expect: { deny: CONDITION_FAILED }
  - name: a claim a test principal carries is what the condition reads
    request: { method: GET, path: /v1/typed, as: { tenant: acme, roles: [viewer], claims: { level: 2 } } }
    expect: allow
`,
    );
    const tested = await runCli(['test', policy]);
    expect(tested.stdout + tested.stderr).toContain('3 passed, 0 failed');
    expect(tested.code).toBe(0);
  });
});
