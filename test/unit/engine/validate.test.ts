import { describe, expect, it } from 'vitest';
import { validatePolicy } from '../../../src/engine/validate.js';
import { formatDiagnostic } from '../../../src/policy/diagnostics.js';

describe('validatePolicy', () => {
  it('returns the Plan and its warnings for a valid policy', async () => {
    const result = await validatePolicy('test/fixtures/policy/valid/shadowed.yaml');
    expect(result.ok).toBe(true);
    expect(result.ok && result.plan.routes.length).toBe(5);
    expect(result.diagnostics.map((d) => `${d.severity} ${d.line}:${d.column}`)).toEqual(['warning 4:10', 'warning 9:5', 'warning 18:5']);
  });

  it('returns every diagnostic of an invalid policy, errors first, instead of throwing', async () => {
    const result = await validatePolicy('test/fixtures/policy/invalid/unknown-upstream.yaml');
    expect(result.ok).toBe(false);
    expect(result.diagnostics.map(formatDiagnostic)).toEqual([
      'test/fixtures/policy/invalid/unknown-upstream.yaml:7:15 routes[0].upstream: unknown upstream "ap" (did you mean "app"?)',
      'test/fixtures/policy/invalid/unknown-upstream.yaml:3:8 warning: upstreams.app: upstream "app" is not used by any route',
    ]);
  });
});
