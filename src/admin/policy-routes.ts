// Built-in admin endpoints about the policy: what is running, and reload it on demand.

import type { PlanManager } from '../engine/compile.js';
import { formatDiagnostic } from '../policy/diagnostics.js';
import type { RegisterRoute } from './routes.js';

const NOT_LOADED = { status: 503, problem: { code: 'POLICY_NOT_LOADED', detail: 'no policy is loaded yet' } } as const;

export function policyRoutes(route: RegisterRoute, policy: () => PlanManager | undefined): void {
  route('GET', '/admin/policy', () => {
    const plan = policy()?.plan;
    if (!plan) return NOT_LOADED;
    return {
      status: 200,
      body: {
        hash: plan.hash,
        loadedAt: new Date(plan.loadedAt).toISOString(),
        files: plan.files,
        routes: plan.routes.map((r) => ({
          name: r.name,
          methods: r.methods ? [...r.methods] : null,
          path: r.matcher.pattern,
          public: r.public,
        })),
        warnings: plan.warnings.map(formatDiagnostic),
      },
    };
  });

  route('POST', '/admin/reload', async () => {
    const manager = policy();
    if (!manager) return NOT_LOADED;
    const result = await manager.reload('admin');
    if (result.ok) return { status: 200, body: { ok: true, hash: result.plan.hash } };
    const errors = result.diagnostics.filter((d) => d.severity === 'error');
    return {
      status: 422,
      problem: {
        code: 'POLICY_REJECTED',
        detail: `the policy was not reloaded; still serving ${manager.plan.hash}`,
        extra: { ok: false, hash: manager.plan.hash, errors: errors.map(formatDiagnostic), diagnostics: result.diagnostics },
      },
    };
  });
}
