import { describe, expect, it } from 'vitest';
import { formatDiagnostic, PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const compile = (upstream: string) => planFrom(`version: 1\nupstreams:\n  app:\n${upstream}\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n`);

describe('compileBreaker', () => {
  it('compiles every breaker key into milliseconds, a fraction and a status set', async () => {
    const plan = await compile(
      '    url: http://127.0.0.1:3000\n    breaker: { consecutiveFailures: 7, errorRate: 40%, minRequests: 12, window: 5s, cooldown: 250ms, halfOpenProbes: 3, failOn: [500, 503] }',
    );
    const b = plan.upstreams.get('app')!.breaker!;
    expect({ ...b, failOn: [...b.failOn] }).toEqual({
      consecutiveFailures: 7,
      errorRate: 0.4,
      minRequests: 12,
      windowMs: 5_000,
      cooldownMs: 250,
      halfOpenProbes: 3,
      failOn: [500, 503],
    });
  });

  it('fills in defaults and opens on 5 failures in a row when no trigger is set', async () => {
    const plan = await compile('    url: http://127.0.0.1:3000\n    breaker: {}');
    const b = plan.upstreams.get('app')!.breaker!;
    expect(b.consecutiveFailures).toBe(5);
    expect(b.errorRate).toBeUndefined();
    expect(b.cooldownMs).toBe(30_000);
    expect([...b.failOn]).toEqual([502, 503, 504]);
  });

  it('uses only the error rate when only the error rate is set', async () => {
    const plan = await compile('    url: http://127.0.0.1:3000\n    breaker: { errorRate: 50% }');
    expect(plan.upstreams.get('app')!.breaker!.consecutiveFailures).toBe(0);
  });

  it('leaves an upstream without a breaker section without a breaker', async () => {
    const plan = await compile('    url: http://127.0.0.1:3000');
    expect(plan.upstreams.get('app')!.breaker).toBeUndefined();
  });

  it('accepts several targets and retries', async () => {
    const plan = await compile('    targets: [http://127.0.0.1:3000, http://127.0.0.1:3001]\n    retries: 2');
    const up = plan.upstreams.get('app')!;
    expect(up.targets.map((t) => t.origin)).toEqual(['http://127.0.0.1:3000', 'http://127.0.0.1:3001']);
    expect(up.retries).toBe(2);
  });

  it('refuses a 0% error rate at its position', async () => {
    const err = await compile('    url: http://127.0.0.1:3000\n    breaker: { errorRate: 0% }').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyError);
    expect((err as PolicyError).diagnostics.map(formatDiagnostic).join('\n')).toMatch(/upstreams\.app\.breaker\.errorRate: an error rate of 0%/);
  });
});
