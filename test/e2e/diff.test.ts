// `portcullis diff` as a reviewer runs it: the built CLI on fixture pairs (test/fixtures/diff/, each
// file is base.yaml changed in one way) and against a running instance's /admin/policy.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ran, requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { redisUrl } from '../helpers/redis.js';

const DIR = 'test/fixtures/diff';
const BASE = `${DIR}/base.yaml`;
const UNSET = ['DIFF_UPSTREAM', 'DIFF_JWT_SECRET', 'DIFF_JWT_SECRET_V2', 'DIFF_REDIS_URL'];
const diff = (args: string[], env: Record<string, string> = {}): Promise<Ran> =>
  runCli(
    ['diff', ...args],
    env,
    UNSET.filter((n) => !(n in env)),
  );

beforeAll(() => requireBuiltCli());

describe('portcullis diff OLD NEW', () => {
  it('finds no change in the same policy reformatted, split in two files, with defaults written out and 30000ms for 30s', async () => {
    const r = await diff([BASE, `${DIR}/reformatted`]);
    expect(r.stdout).toBe('no changes\n');
    expect(r.code).toBe(0);
  });

  it('shows a route moved ahead of others, since the first match wins', async () => {
    const r = await diff([BASE, `${DIR}/reordered.yaml`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe(
      ['routes:', '  ~ admin', '      moved: position 4 → 1 (the first match wins: now tried before "health", "tenant-reports", "tenant-exports")', '1 change (routes 1)', ''].join('\n'),
    );
  });

  it('shows a role permission change with the effective permissions it gives every inheriting role and key', async () => {
    const r = await diff([BASE, `${DIR}/role-permission.yaml`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('roles:\n  ~ viewer\n      permissions: + reports:list\n      effective permissions: + reports:list\n');
    expect(r.stdout).toContain('  ~ analyst\n      effective permissions: + reports:list\n');
    expect(r.stdout).toContain('api keys:\n  ~ acme-app\n      effective permissions: + reports:list\n');
    expect(r.stdout).toMatch(/^5 changes \(api keys 2, roles 3\)$/m);
  });

  it('shows an added API key by id with its tenant, roles and expiry, but not its hash', async () => {
    const r = await diff([BASE, `${DIR}/key-added.yaml`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      ['api keys:', '  + globex-ci', '      tenant: globex', '      roles: viewer', '      expires: 2030-12-31T00:00:00.000Z', '      hash: (hash)', '      effective permissions: reports:read'].join(
        '\n',
      ),
    );
    expect(r.stdout).not.toContain('1111111111');
  });

  it('shows changed limits as old → new rates', async () => {
    const r = await diff([BASE, `${DIR}/limits.yaml`]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('routes:\n  ~ tenant-reports\n      limits: by principal 10/s burst 10 → by principal 20/s burst 10\n');
    expect(r.stdout).toContain('tenant tiers:\n  ~ free\n      rate: 10/s → 5/s\n');
  });

  it('never prints a secret: env values show as their names, hashes and passwords only as changed', async () => {
    const env = {
      DIFF_UPSTREAM: 'http://127.0.0.1:3000',
      DIFF_JWT_SECRET: 'jwt-secret-value-0123456789abcdef0123',
      DIFF_JWT_SECRET_V2: 'jwt-secret-value-v2-0123456789abcdef01',
      DIFF_REDIS_URL: 'redis://:env-store-password@127.0.0.1:6379',
    };
    for (const args of [
      [BASE, `${DIR}/secrets.yaml`],
      [BASE, `${DIR}/secrets.yaml`, '--json'],
    ]) {
      const r = await diff(args, env);
      expect(r.code).toBe(1);
      for (const secret of ['jwt-secret-value', 'env-store-password', 'hunter2-store-password', '4d398d0d0d1c', '2222222222']) {
        expect(r.stdout).not.toContain(secret);
        expect(r.stderr).not.toContain(secret);
      }
    }
    const r = await diff([BASE, `${DIR}/secrets.yaml`], env);
    expect(r.stdout).toContain('jwt issuers:\n  ~ corp\n      secret: env:DIFF_JWT_SECRET → env:DIFF_JWT_SECRET_V2\n');
    expect(r.stdout).toContain('api keys:\n  ~ acme-app\n      hash: changed (hash)\n');
    expect(r.stdout).toContain('store:\n  url: env:DIFF_REDIS_URL → redis://portcullis:***@redis.internal:6379/1\n');
  });

  it('compares unset variables by name and says so', async () => {
    const r = await diff([BASE, `${DIR}/reformatted`]);
    expect(r.stderr).toContain('DIFF_JWT_SECRET, DIFF_REDIS_URL, DIFF_UPSTREAM are not set: compared by name (env:NAME), not by value');
  });

  it('prints the changes as JSON with --json', async () => {
    const r = await diff([BASE, `${DIR}/reordered.yaml`, '--json']);
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { changed: boolean; changes: number; sections: unknown[] };
    expect(out).toMatchObject({
      changed: true,
      changes: 1,
      sections: [
        {
          section: 'routes',
          changes: [{ kind: 'changed', name: 'admin', position: 1, moved: { from: 4, to: 1, nowBefore: ['health', 'tenant-reports', 'tenant-exports'], nowAfter: [] }, fields: [] }],
        },
      ],
    });
    const same = await diff([BASE, `${DIR}/reformatted`, '--json']);
    expect(same.code).toBe(0);
    expect(JSON.parse(same.stdout)).toMatchObject({ changed: false, changes: 0, sections: [] });
  });

  it('refuses an invalid side with file:line:col on stderr and exit 2', async () => {
    const r = await diff([BASE, `${DIR}/invalid.yaml`]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('test/fixtures/diff/invalid.yaml:6:26 upstreams.app.timeouts.connect: expected a duration such as 250ms, 30s, 5m, 1h or 1d');
    expect(r.stderr).toContain('portcullis diff: NEW (test/fixtures/diff/invalid.yaml) is not a valid policy');
    const missing = await diff(['/nope', BASE]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('/nope:1:1 policy not found');
  });

  it('answers a wrong invocation with exit 2 and the usage', async () => {
    const r = await diff([BASE]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('portcullis diff: OLD and NEW are required');
    expect(r.stderr).toContain('Exit codes (as diff(1)):');
  });
});

describe('portcullis diff --admin URL NEW', () => {
  const TOKEN = 'diff-e2e-admin-token-0123456789abcdef';
  let work: string;
  let serving: Serving;
  // Served without the audit section: it writes a file relative to the working directory.
  const served = readFileSync(BASE, 'utf8').replace(/\naudit:[\s\S]*$/, '\n');
  const env = (): Record<string, string> => ({
    DIFF_UPSTREAM: 'http://127.0.0.1:9',
    DIFF_JWT_SECRET: 'jwt-secret-value-0123456789abcdef0123',
    DIFF_REDIS_URL: redisUrl(),
    PORTCULLIS_ADMIN_TOKEN: TOKEN,
  });

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'portcullis-diff-e2e-'));
    writeFileSync(join(work, 'running.yaml'), served);
    // The admin route moved first, as in reordered.yaml.
    writeFileSync(
      join(work, 'reordered.yaml'),
      served
        .replace(/ {2}- name: admin\n[\s\S]*?ipAllow: \[127\.0\.0\.0\/8\]\n/, '')
        .replace('routes:\n', 'routes:\n  - name: admin\n    match: { path: "/v1/admin/**" }\n    require: ["admin:*"]\n    ipAllow: [127.0.0.0/8]\n'),
    );
    writeFileSync(join(work, 'limits.yaml'), served.replace('free: { rate: 10/s', 'free: { rate: 5/s'));
    serving = await serveCli(join(work, 'running.yaml'), env());
  });
  afterAll(async () => {
    await serving?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it('finds no change against the policy the instance runs', async () => {
    const r = await diff(['--admin', serving.admin, join(work, 'running.yaml')], env());
    expect(r.stderr).toContain(`compared with the instance at ${serving.admin}: it publishes its policy hash and its routes' names, methods, paths and public flags, nothing else`);
    expect(r.stdout).toBe('no changes\n');
    expect(r.code).toBe(0);
  });

  it('shows a route that would move', async () => {
    const r = await diff(['--admin', serving.admin, join(work, 'reordered.yaml')], env());
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('  ~ admin\n      moved: position 4 → 1');
  });

  it('says a change outside the published routes exists when only the hash differs', async () => {
    const r = await diff(['--admin', serving.admin, join(work, 'limits.yaml')], env());
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('changes outside the published routes (policy hash differs)\n');
    expect(r.stderr).toMatch(/the policy hashes differ \([0-9a-f]{12} running, [0-9a-f]{12} in NEW\)/);
  });

  it('exits 2 without the admin token or with a wrong one', async () => {
    const { PORTCULLIS_ADMIN_TOKEN: _, ...noToken } = env();
    const none = await runCli(['diff', '--admin', serving.admin, join(work, 'running.yaml')], noToken, ['PORTCULLIS_ADMIN_TOKEN']);
    expect(none.code).toBe(2);
    expect(none.stderr).toContain('PORTCULLIS_ADMIN_TOKEN is not set');
    const wrong = await diff(['--admin', serving.admin, join(work, 'running.yaml')], { ...env(), PORTCULLIS_ADMIN_TOKEN: 'wrong-token-0123456789abcdef0123456789' });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toMatch(/GET \/admin\/policy answered 401/);
  });
});
