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
