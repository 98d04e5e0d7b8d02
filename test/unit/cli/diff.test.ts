import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { comparePolicies, formatChanges } from '../../../src/cli/diff.js';
import { type Fields, formatMs, formatRate, formatSize, type PolicyView, policyView, redactUrl } from '../../../src/cli/diff-view.js';
import { compilePolicy } from '../../../src/engine/compile.js';
import { loadPolicySource } from '../../../src/policy/load.js';

const work = mkdtempSync(join(tmpdir(), 'portcullis-diff-unit-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const routesView = (names: string[]): PolicyView => ({
  hash: names.join(','),
  sections: [{ title: 'routes', ordered: true, entries: new Map<string, Fields>(names.map((n) => [n, { path: { show: `/${n}`, key: `/${n}` } }])) }],
});

async function view(dir: string, files: Record<string, string>, env: NodeJS.ProcessEnv = {}): Promise<PolicyView> {
  const at = join(work, dir);
  mkdirSync(at, { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(at, name), text);
  const loaded = await loadPolicySource(join(at, 'policy.yaml'), { env });
  return policyView(loaded, compilePolicy(loaded).plan);
}

describe('value notations', () => {
  it('states durations, rates and sizes in one form whatever unit they were written in', () => {
    expect([formatMs(30_000), formatMs(1_500), formatMs(86_400_000), formatMs(0)]).toEqual(['30s', '1500ms', '1d', '0ms']);
    expect([formatRate(10), formatRate(600 / 60), formatRate(0.5), formatRate(90 / 3600)]).toEqual(['10/s', '10/s', '30/m', '90/h']);
    expect([formatSize(1_048_576), formatSize(1536), formatSize(10)]).toEqual(['1mb', '1536b', '10b']);
  });

  it('masks a URL password but still tells a password change apart', () => {
    const a = redactUrl('redis://app:one@redis:6379/0');
    const b = redactUrl('redis://app:two@redis:6379/0');
    expect(a.show).toBe('redis://app:***@redis:6379/0');
    expect(a.show).toBe(b.show);
    expect(a.key).not.toBe(b.key);
    expect(redactUrl('http://127.0.0.1:3000')).toEqual({ show: 'http://127.0.0.1:3000', key: 'http://127.0.0.1:3000' });
  });
});

describe('comparePolicies', () => {
  it('reports one move when two neighbouring routes swap, not every route that changed index', () => {
    const changes = comparePolicies(routesView(['a', 'b', 'c', 'd']), routesView(['b', 'a', 'c', 'd']));
    expect(changes).toHaveLength(1);
    const moved = changes[0]!.changes;
    expect(moved).toHaveLength(1);
    expect(moved[0]!.moved).toBeDefined();
  });

  it('does not call a route moved when routes before it were added or removed', () => {
    const changes = comparePolicies(routesView(['a', 'b', 'c']), routesView(['x', 'a', 'c', 'y']));
    expect(changes[0]!.changes.map((c) => `${c.kind} ${c.name}`)).toEqual(['added x', 'added y', 'removed b']);
  });
});

describe('policyView', () => {
  const pem = (): string => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'pem' }) as string;
  const policy = `version: 1
upstreams: { app: { url: http://127.0.0.1:3000 } }
authentication:
  jwt:
    - { name: corp, issuer: https://idp/, audience: api, publicKey: file:key.pem, algorithms: [ES256] }
routes:
  - { name: r, match: { path: /r }, require: ["file:read"] }
roles:
  reader: { permissions: ["file:read"] }
`;

  it('shows a file: value as its reference, and only that the file changed, never its contents', async () => {
    const keyA = pem();
    const keyB = pem();
    const before = await view('file-a', { 'policy.yaml': policy, 'key.pem': keyA });
    const after = await view('file-b', { 'policy.yaml': policy, 'key.pem': keyB });
    const text = formatChanges(comparePolicies(before, after));
    expect(text).toBe("jwt issuers:\n  ~ corp\n      publicKey: file:key.pem (the file's contents changed)\n");
    expect(text).not.toContain('BEGIN');
    const same = await view('file-c', { 'policy.yaml': policy, 'key.pem': keyA });
    expect(comparePolicies(before, same)).toEqual([]);
  });

  it('reads a permission that looks like a file: reference as the permission it is', async () => {
    const v = await view('perm', { 'policy.yaml': policy, 'key.pem': pem() });
    const routes = v.sections.find((s) => s.title === 'routes')!;
    expect(routes.entries.get('r')!.require).toEqual({ set: ['file:read'] });
    const roles = v.sections.find((s) => s.title === 'roles')!;
    expect(roles.entries.get('reader')!.permissions).toEqual({ set: ['file:read'] });
  });

  it('shows a value read from the environment as its variable name, whatever its value', async () => {
    const text = (host: string, prefix: string) => `version: 1
upstreams: { app: { url: http://127.0.0.1:3000 } }
routes:
  - { name: r, match: { path: /r, host: ${host} }, public: true }
store: { prefix: ${prefix} }
`;
    const before = await view('env-a', { 'policy.yaml': text('env:DIFF_HOST', 'env:DIFF_PREFIX') }, { DIFF_HOST: 'api.internal.example', DIFF_PREFIX: 'secret-prefix:' });
    const after = await view('env-b', { 'policy.yaml': text('[env:DIFF_HOST, other.example]', '"p:"') }, { DIFF_HOST: 'api.internal.example' });
    const out = formatChanges(comparePolicies(before, after));
    expect(out).toBe('routes:\n  ~ r\n      hosts: + other.example\nstore:\n  prefix: env:DIFF_PREFIX → p:\n');
    expect(out).not.toContain('internal');
  });
});
