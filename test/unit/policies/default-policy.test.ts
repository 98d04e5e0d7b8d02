import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { schemaText, testSchemaText } from '../../../src/cli/schema.js';
import { validatePolicy } from '../../../src/engine/validate.js';

const root = new URL('../../../', import.meta.url);

describe('the embedded default policy', () => {
  it('ships a policies/policy.schema.json identical to what `portcullis schema` prints', () => {
    const committed = readFileSync(new URL('policies/policy.schema.json', root), 'utf8');
    expect(committed === schemaText(), 'policies/policy.schema.json is stale: run `npm run schema`').toBe(true);
  });

  it('ships a schemas/policy-test.schema.json identical to what `portcullis schema --tests` prints', () => {
    const committed = readFileSync(new URL('schemas/policy-test.schema.json', root), 'utf8');
    expect(committed === testSchemaText(), 'schemas/policy-test.schema.json is stale: run `npm run schema`').toBe(true);
  });

  it('points editors at the schema from gateway.yaml', () => {
    const text = readFileSync(new URL('policies/gateway.yaml', root), 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=./policy.schema.json');
  });

  it('validates, with a public health route first and protected tenant routes', async () => {
    const result = await validatePolicy(new URL('policies', root).pathname, { env: { DEMO_UPSTREAM: 'http://127.0.0.1:3000' } });
    expect(result.diagnostics).toEqual([]);
    if (!result.ok) throw new Error('default policy invalid');
    const routes = result.plan.routes;
    expect(routes[0]).toMatchObject({ name: 'health', public: true });
    expect(routes[0]!.matcher.match('/healthz')).toBeDefined();
    const reports = routes.find((r) => r.name === 'tenant-reports');
    expect(reports?.public).toBe(false);
    expect(result.plan.router.find('GET', 'localhost', '/public/hello')?.route.name).toBe('public-demo');
    expect(result.plan.router.find('GET', 'localhost', '/v1/tenants/acme/reports/q1')?.route.name).toBe('tenant-reports');
  });

  it('refuses to load when DEMO_UPSTREAM is not set, naming the variable', async () => {
    const result = await validatePolicy(new URL('policies', root).pathname, { env: {} });
    expect(result.ok).toBe(false);
    expect(result.diagnostics[0]!.message).toMatch(/DEMO_UPSTREAM/);
  });
});
