import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { BENCH_ID, benchOverlay, pickRoute, samplePath } from '../../../src/cli/bench-overlay.js';
import { CompileContext } from '../../../src/policy/compile-context.js';
import { loadPolicySource } from '../../../src/policy/load.js';
import { compileRoutes } from '../../../src/routing/compile.js';
import type { CompiledRoute } from '../../../src/routing/route.js';

const FIXTURE = new URL('../../fixtures/bench/basic/policy.yaml', import.meta.url).pathname;
const LIMITED = new URL('../../fixtures/bench/limited/policy.yaml', import.meta.url).pathname;
const env = { BENCH_FIXTURE_UPSTREAM: 'http://127.0.0.1:9' };
const WORK = '/tmp/portcullis-bench-test';

// Routes compiled on their own: what bench reads of a route does not depend on the other sections.
async function fixture(file = FIXTURE) {
  const loaded = await loadPolicySource(file, { env });
  const cx = new CompileContext(loaded);
  const routes = compileRoutes(loaded.document, cx);
  expect(cx.diagnostics).toEqual([]);
  return { loaded, plan: { routes } };
}

const routeNamed = (plan: { routes: CompiledRoute[] }, name: string) => pickRoute(plan.routes, name);

describe('samplePath', () => {
  it('fills parameters, * and ** so the pattern matches', () => {
    expect(samplePath('/v1/tenants/{tenant}/reports/**', { tenant: 'acme' })).toBe('/v1/tenants/acme/reports/bench');
    expect(samplePath('/a/*/b/{id}', {})).toBe('/a/x/b/bench');
    expect(samplePath('/healthz', {})).toBe('/healthz');
  });
});

describe('pickRoute', () => {
  it('takes the named route, else the first route that is not public', async () => {
    const { plan } = await fixture();
    expect(pickRoute(plan.routes, undefined).name).toBe('tenant-reports');
    expect(pickRoute(plan.routes, 'health').name).toBe('health');
    expect(() => pickRoute(plan.routes, 'nope')).toThrow(/no route named "nope" \(routes: health, tenant-reports, sso-only\)/);
  });
});

describe('benchOverlay', () => {
  it('adds an API key whose hash matches the header it sends, with a role granting what the route requires', async () => {
    const { loaded, plan } = await fixture();
    const route = routeNamed(plan, 'tenant-reports');
    const { doc, request } = await benchOverlay(loaded.document, route, { upstreamUrl: 'http://127.0.0.1:4321', tenant: 'acme', durationMs: 1000, workDir: WORK });
    expect(request).toMatchObject({ method: 'GET', path: '/v1/tenants/acme/reports/bench', credential: 'apiKey', body: undefined });
    const secret = request.headers['x-api-key']!;
    const key = doc.authentication!.apiKeys!.keys!.find((k) => k.id === BENCH_ID)!;
    expect(key.hash).toBe(`sha256:${createHash('sha256').update(secret).digest('hex')}`);
    expect(key).toMatchObject({ tenant: 'acme', roles: [BENCH_ID] });
    expect(doc.roles![BENCH_ID]).toEqual({ permissions: ['reports:read'] });
    expect(doc.upstreams!.app!.url).toBe('http://127.0.0.1:4321');
    expect(route.matcher.match(request.path)).toEqual({ tenant: 'acme' });
    // The loaded document is left as it was.
    expect(loaded.document.authentication!.apiKeys!.keys).toBeUndefined();
    expect(loaded.document.upstreams!.app!.url).toBe('http://127.0.0.1:9');
  });

  it('signs a JWT from a generated issuer for a route that accepts only JWTs', async () => {
    const { loaded, plan } = await fixture();
    const { doc, request } = await benchOverlay(loaded.document, routeNamed(plan, 'sso-only'), { upstreamUrl: 'http://127.0.0.1:1', tenant: 'acme', durationMs: 1000, workDir: WORK });
    expect(request.credential).toBe('jwt');
    expect(request.path).toBe('/v1/sso/acme/x');
    const issuer = doc.authentication!.jwt!.find((j) => j.name === BENCH_ID)!;
    expect(issuer.publicKey).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const { jwtVerify, importSPKI } = await import('jose');
    const token = request.headers.authorization!.replace(/^Bearer /, '');
    const { payload } = await jwtVerify(token, await importSPKI(issuer.publicKey!, 'ES256'), { issuer: issuer.issuer, audience: issuer.audience as string });
    expect(payload).toMatchObject({ sub: BENCH_ID, tenant: 'acme', roles: [BENCH_ID] });
  });

  it("sends audit events to a file in the bench directory, never to the policy's sinks or spool", async () => {
    const { loaded, plan } = await fixture();
    const doc = {
      ...loaded.document,
      audit: { chain: true, spool: '/var/spool/portcullis', sinks: [{ stdout: {} }, { file: { path: './audit.ndjson' } }, { webhook: { url: 'https://siem.example.com/ingest' } }] },
    };
    const out = await benchOverlay(doc, routeNamed(plan, 'health'), { upstreamUrl: 'http://127.0.0.1:1', tenant: 't', durationMs: 1000, workDir: WORK });
    expect(out.doc.audit).toEqual({ chain: true, spool: `${WORK}/audit-spool`, sinks: [{ file: { path: `${WORK}/audit.ndjson` } }] });
    expect(doc.audit.sinks).toHaveLength(3);
    // No spool written: it would default to the working directory; the bench's directory instead.
    const bare = await benchOverlay({ ...loaded.document, audit: { chain: true } }, routeNamed(plan, 'health'), { upstreamUrl: 'http://127.0.0.1:1', tenant: 't', durationMs: 1000, workDir: WORK });
    expect(bare.doc.audit).toEqual({ chain: true, spool: `${WORK}/audit-spool` });
  });

  it('drops store.url so limits are counted in memory, unless the policy store is asked for', async () => {
    const { loaded, plan } = await fixture();
    const doc = { ...loaded.document, store: { url: 'redis://:secret@10.0.0.5:6379/2', onError: 'deny' as const, prefix: 'prod:' } };
    const options = { upstreamUrl: 'http://127.0.0.1:1', tenant: 't', durationMs: 1000, workDir: WORK };
    const isolated = await benchOverlay(doc, routeNamed(plan, 'tenant-reports'), options);
    expect(isolated.doc.store).toEqual({ onError: 'deny', prefix: 'prod:' });
    const shared = await benchOverlay(doc, routeNamed(plan, 'tenant-reports'), { ...options, usePolicyStore: true });
    expect(shared.doc.store).toEqual(doc.store);
    expect(doc.store.url).toBe('redis://:secret@10.0.0.5:6379/2');
  });

  it('sends a body for POST routes and nothing extra for public ones', async () => {
    const limited = await fixture(LIMITED);
    const post = await benchOverlay(limited.loaded.document, routeNamed(limited.plan, 'throttled'), { upstreamUrl: 'http://127.0.0.1:1', tenant: 't', durationMs: 1000, workDir: WORK });
    expect(post.request).toMatchObject({ method: 'POST', body: '{"bench":true}', path: '/v1/throttled/bench' });
    expect(post.request.headers['content-type']).toBe('application/json');
    expect(post.doc.roles).toBeUndefined(); // nothing required, no role added
    const { loaded, plan } = await fixture();
    const open = await benchOverlay(loaded.document, routeNamed(plan, 'health'), { upstreamUrl: 'http://127.0.0.1:1', tenant: 't', durationMs: 1000, workDir: WORK });
    expect(open.request).toMatchObject({ credential: 'none', path: '/healthz', headers: {} });
    expect(open.doc.authentication!.apiKeys!.keys).toBeUndefined();
  });
});

describe('reasonOf', () => {
  it('reads the reason code of a Portcullis problem body and counts anything forwarded as OK', async () => {
    const { reasonOf } = await import('../../../src/cli/bench-load.js');
    const { deny, problemBody } = await import('../../../src/core/reasons.js');
    expect(reasonOf(429, problemBody(deny('RATE_LIMITED'), 'r1'))).toBe('RATE_LIMITED');
    expect(reasonOf(200, '{"code":"RATE_LIMITED"}')).toBe('OK');
    // An upstream's own error is forwarded: not one of ours, whatever it calls itself.
    expect(reasonOf(500, '{"code":"RATE_LIMITED"}')).toBe('OK');
    expect(reasonOf(502, 'Bad Gateway')).toBe('OK');
    expect(reasonOf(503, '{not json')).toBe('OK');
  });
});
