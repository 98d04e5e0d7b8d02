import { describe, expect, it } from 'vitest';
import { compilePolicy } from '../../../src/engine/compile.js';
import { formatDiagnostic } from '../../../src/policy/diagnostics.js';
import { loadPolicySource } from '../../../src/policy/load.js';
import { planFrom } from '../../helpers/plan.js';

const DIR = 'test/fixtures/policy/valid';

async function compile(name: string, env: NodeJS.ProcessEnv = {}): Promise<ReturnType<typeof compilePolicy>> {
  return compilePolicy(await loadPolicySource(`${DIR}/${name}`, { env }));
}

/** Every object reachable from `value` (Maps and Sets included) is frozen. */
function unfrozen(value: unknown, path = 'plan', seen = new Set<unknown>()): string[] {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function') || seen.has(value)) return [];
  seen.add(value);
  const out = Object.isFrozen(value) ? [] : [path];
  if (value instanceof Map) {
    expect(() => value.set('x', 1), `${path} accepts set`).toThrow();
    for (const [k, v] of value) out.push(...unfrozen(v, `${path}.get(${String(k)})`, seen));
  }
  if (value instanceof Set) expect(() => value.add('x'), `${path} accepts add`).toThrow();
  for (const key of Object.keys(value)) out.push(...unfrozen((value as Record<string, unknown>)[key], `${path}.${key}`, seen));
  return out;
}

describe('compilePolicy', () => {
  it.each(['gateway.yaml', 'single.yaml', 'split', 'split-merged.yaml', 'shadowed.yaml'])('compiles %s into a deeply frozen Plan', async (name) => {
    const { plan } = await compile(name);
    expect(unfrozen(plan)).toEqual([]);
    expect(plan.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('applies upstream defaults and turns a URL path into a basePath', async () => {
    const { plan } = await compile('gateway.yaml');
    expect(plan.upstreams.get('app')).toEqual({
      name: 'app',
      targets: [{ origin: 'http://127.0.0.1:3000', basePath: '/base' }],
      connectTimeoutMs: 500,
      responseTimeoutMs: 5_000,
      connections: 16,
      retries: 0,
      protocol: 'http1',
    });
    expect(plan.upstreams.get('billing')).toEqual({
      name: 'billing',
      targets: [{ origin: 'http://127.0.0.1:4000', basePath: '' }],
      connectTimeoutMs: 2_000,
      responseTimeoutMs: 30_000,
      connections: 128,
      retries: 0,
      protocol: 'http1',
    });
    expect(['10.0.0.1', '::1', '192.0.2.7', '192.0.2.8'].map((ip) => plan.ipRules.trusted.trusts(ip))).toEqual([true, true, true, false]);
  });

  it('compiles routes in file order with lower-case hosts and the only upstream as default', async () => {
    const gateway = (await compile('gateway.yaml')).plan;
    const reports = gateway.routes[1]!;
    expect(reports.name).toBe('reports');
    expect([...reports.hosts!]).toEqual(['api.example.com']);
    expect([...reports.methods!]).toEqual(['GET', 'HEAD']);
    expect(reports.source).toEqual({ file: `${DIR}/gateway.yaml`, line: 19, column: 5 });
    expect(gateway.routes.map((r) => r.name)).toEqual(['health', 'reports', 'invoices', 'everything']);
    expect(gateway.router.find('GET', 'api.example.com', '/v1/tenants/acme/reports/q1')?.params).toEqual({ tenant: 'acme' });
    // A route that names no methods accepts every configured one; a public route none.
    expect(gateway.authn.routes.get(2)?.methods.map((m) => m.method)).toEqual(['apiKey', 'jwt'].filter((m) => (m === 'apiKey' ? gateway.authn.apiKey : gateway.authn.jwt) !== undefined));
    expect(gateway.authn.routes.has(0)).toBe(false);

    const single = (await compile('single.yaml')).plan;
    expect(single.routes[0]!.upstream).toBe('app');
  });

  it('merges a directory (skipping *.test.yaml) into the same Plan as the equivalent single file', async () => {
    const split = (await compile('split')).plan;
    const merged = (await compile('split-merged.yaml')).plan;
    expect(split.files).toEqual([`${DIR}/split/00-upstreams.yaml`, `${DIR}/split/10-routes.yaml`]);
    expect(split.hash).toBe(merged.hash);
    expect(split.upstreams.get('billing')!.targets[0]!.basePath).toBe('/api/v2');
    expect(split.routes[1]!.source).toEqual({ file: `${DIR}/split/10-routes.yaml`, line: 7, column: 5 });
  });

  it('resolves env: and file: values before validating', async () => {
    const { plan } = await compile('references.yaml', { PORTCULLIS_TEST_UPSTREAM_URL: 'http://127.0.0.1:4444' });
    expect(plan.upstreams.get('env-upstream')!.targets).toEqual([{ origin: 'http://127.0.0.1:4444', basePath: '' }]);
    expect(plan.upstreams.get('file-upstream')!.targets).toEqual([{ origin: 'http://127.0.0.1:5000', basePath: '/from-file' }]);
  });

  it('changes the hash when a resolved value changes', async () => {
    const a = (await compile('references.yaml', { PORTCULLIS_TEST_UPSTREAM_URL: 'http://127.0.0.1:4444' })).plan;
    const b = (await compile('references.yaml', { PORTCULLIS_TEST_UPSTREAM_URL: 'http://127.0.0.1:4445' })).plan;
    expect(a.hash).not.toBe(b.hash);
  });

  it('warns about shadowed routes and unused upstreams, and keeps the warnings in the Plan', async () => {
    const { plan, warnings } = await compile('shadowed.yaml');
    const f = `${DIR}/shadowed.yaml`;
    expect(warnings.map(formatDiagnostic)).toEqual([
      `${f}:9:5 warning: routes[1]: route "users" is never reached: route "api" (${f}:6:5) matches every request it would`,
      `${f}:18:5 warning: routes[4]: route "health-again" is never reached: route "only-get" (${f}:12:5) matches every request it would`,
      `${f}:4:10 warning: upstreams.spare: upstream "spare" is not used by any route`,
    ]);
    expect(plan.warnings).toEqual(warnings);
  });

  it('accepts the not-yet-built keys in their harmless forms (one target, retries 0)', async () => {
    const plan = await planFrom(
      'version: 1\nupstreams:\n  app: { targets: [http://127.0.0.1:3000], retries: 0 }\nauthentication: { apiKeys: {} }\nroutes:\n  - { name: all, match: { path: "/**" } }\n',
    );
    expect(plan.upstreams.get('app')!.targets).toHaveLength(1);
  });
});
