import { describe, expect, it } from 'vitest';
import { compilePattern } from '../../../src/routing/pattern.js';
import type { CompiledRoute } from '../../../src/routing/route.js';
import { compileRouter } from '../../../src/routing/router.js';

function route(index: number, name: string, path: string, opts: { methods?: string[]; hosts?: string[] } = {}): CompiledRoute {
  return {
    name,
    index,
    source: { file: 'p.yaml', line: index + 1, column: 1 },
    hosts: opts.hosts ? new Set(opts.hosts) : undefined,
    methods: opts.methods ? new Set(opts.methods) : undefined,
    matcher: compilePattern(path),
    public: true,
    upstream: 'app',
    methodOverride: undefined,
  };
}

const ROUTES = [
  route(0, 'health', '/healthz'),
  route(1, 'reports-get', '/v1/tenants/{tenant}/reports/**', { methods: ['GET', 'HEAD'], hosts: ['api.example.com'] }),
  route(2, 'any-tenant-thing', '/{version}/tenants/{tenant}/**', { methods: ['POST'] }),
  route(3, 'reports-any-host', '/v1/tenants/{tenant}/reports/**'),
  route(4, 'admin', '/v1/admin/**'),
  route(5, 'root', '/'),
  route(6, 'fallback', '/**', { methods: ['GET'] }),
];
const router = compileRouter(ROUTES);

describe('compileRouter', () => {
  it.each([
    ['GET', 'x', '/healthz', 'health', {}],
    ['GET', 'api.example.com', '/v1/tenants/acme/reports/q1', 'reports-get', { tenant: 'acme' }],
    ['DELETE', 'api.example.com', '/v1/tenants/acme/reports/q1', 'reports-any-host', { tenant: 'acme' }],
    ['GET', 'other.example.com', '/v1/tenants/acme/reports/q1', 'reports-any-host', { tenant: 'acme' }],
    // an earlier wildcard-first route beats a later route in the literal bucket: file order wins
    ['POST', 'api.example.com', '/v1/tenants/acme/reports/q1', 'any-tenant-thing', { version: 'v1', tenant: 'acme' }],
    ['POST', 'x', '/v2/tenants/acme/x', 'any-tenant-thing', { version: 'v2', tenant: 'acme' }],
    ['PUT', 'x', '/v1/admin/users', 'admin', {}],
    ['GET', 'x', '/', 'root', {}],
    ['GET', 'x', '/nothing/here', 'fallback', {}],
  ])('routes %s %s%s to %s', (method, host, path, name, params) => {
    const m = router.find(method, host, path);
    expect(m?.route.name).toBe(name);
    expect(m?.params).toEqual(params);
  });

  it('finds nothing when no route matches (default deny)', () => {
    expect(router.find('POST', 'x', '/nothing/here')).toBeUndefined();
    expect(router.find('DELETE', 'x', '/healthz/x')).toBeUndefined();
  });

  it('explains every route it tried, with the reason each did not match', () => {
    const { match, attempts } = router.explain('GET', 'other.example.com', '/v1/tenants/acme/reports/q1');
    expect(match?.route.name).toBe('reports-any-host');
    expect(attempts).toEqual([
      { route: 'health', matched: false, reason: 'path /v1/tenants/acme/reports/q1 does not match /healthz' },
      { route: 'reports-get', matched: false, reason: 'host "other.example.com" is not one of api.example.com' },
      { route: 'any-tenant-thing', matched: false, reason: 'method GET is not one of POST' },
      { route: 'reports-any-host', matched: true, reason: 'GET /v1/tenants/acme/reports/q1 matches /v1/tenants/{tenant}/reports/**' },
    ]);
  });

  it('makes the same decision as a plain first-match scan for many requests', () => {
    const methods = ['GET', 'POST', 'DELETE'];
    const hosts = ['api.example.com', 'x'];
    const segments = ['v1', 'v2', 'tenants', 'acme', 'reports', 'admin', 'healthz', ''];
    let seed = 7;
    const next = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    for (let i = 0; i < 3000; i++) {
      const depth = 1 + next(6);
      const path = `/${Array.from({ length: depth }, () => segments[next(segments.length)]).join('/')}`;
      const method = methods[next(methods.length)]!;
      const host = hosts[next(hosts.length)]!;
      const linear = ROUTES.find((r) => (!r.methods || r.methods.has(method)) && (!r.hosts || r.hosts.has(host)) && r.matcher.match(path) !== undefined);
      const found = router.find(method, host, path);
      expect(found?.route.name, `${method} ${host} ${path}`).toBe(linear?.name);
      expect(router.explain(method, host, path).match?.route.name).toBe(linear?.name);
    }
  });
});
