import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { found } from '../../helpers/authn.js';
import { planAt } from '../../helpers/plan.js';

const env = { BENCH_UPSTREAM: 'http://127.0.0.1:9' };
const load = (dir: string) => planAt(dir, env);

describe('bench policies for authentication', () => {
  it('the API key scenario authenticates its bench key', async () => {
    const plan = await load('bench/policies/api-key');
    const out = found(await plan.authn!.apiKey!.authenticate(['x-api-key', 'bench-key-acme']));
    expect(out?.principal?.tenant).toBe('acme');
  });

  it('the JWT scenario verifies its bench token', async () => {
    const plan = await load('bench/policies/jwt');
    const token = readFileSync('bench/policies/jwt/bench-token.txt', 'utf8').trim();
    const out = await plan.authn!.jwt!.verify(token);
    expect(out.principal).toMatchObject({ subject: 'bench', tenant: 'acme', roles: ['analyst'] });
  });
});

describe('the bench policy of the decision scenarios', () => {
  it('trusts the loopback data plane, limits no concurrency (a decision listener refuses it) and authenticates its bench key', async () => {
    const plan = await planAt('bench/policies/decisions', { ...env, REDIS_URL: 'redis://127.0.0.1:9', BENCH_AUDIT_FILE: '/tmp/unused.ndjson' });
    expect(plan.ipRules.trusted.trusts('127.0.0.1')).toBe(true);
    expect([...(plan.limits?.tiers.values() ?? [])].map((t) => t.concurrency)).toEqual([undefined]);
    const out = found(await plan.authn!.apiKey!.authenticate(['x-api-key', 'bench-key-acme']));
    expect(out?.principal?.tenant).toBe('acme');
  });
});

describe('the bench policy of the HTTP/2 scenarios', () => {
  it('forwards over h2c to the stub upstream and routes both the gRPC echo and the GETs as public', async () => {
    const plan = await planAt('bench/policies/h2', { BENCH_H2_UPSTREAM: 'http://127.0.0.1:9' });
    expect(plan.upstreams.get('app')!.protocol).toBe('h2c');
    const grpc = plan.router.find('POST', '127.0.0.1', '/bench.Echo/Say');
    const get = plan.router.find('GET', '127.0.0.1', '/v1/reports/q1');
    expect([grpc?.route.name, grpc?.route.public, get?.route.name, get?.route.public]).toEqual(['echo', true, 'reports', true]);
  });
});
