// A concurrency slot is held until the request ends, and no decision protocol (ext_authz, forward
// auth, auth_request) tells the decider when that is: a slot taken for a decision could only be
// given back at once, which limits nothing, or never, which locks the tenant out. So a policy that
// asks for concurrency limits is refused while a decision listener runs, at the key that asks.
import type { Plan } from '../core/plan.js';
import type { Diagnostic } from '../policy/diagnostics.js';
import type { KeyPath, SourcePosition } from '../policy/source-map.js';
import { diagnosticAt } from '../policy/source-map.js';

const WHY =
  'concurrency cannot be limited through a decision listener (serve --decisions): no data plane tells Portcullis when the request ends. Remove it, or run Portcullis as the proxy for these tenants';

/** An error at every tier's `concurrency`. */
export function concurrencyDiagnostics(plan: Plan, position: (path: KeyPath) => SourcePosition): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const tier of plan.limits?.tiers.values() ?? []) {
    if (tier.concurrency === undefined) continue;
    const path = ['tenants', 'tiers', tier.name, 'concurrency'];
    out.push(diagnosticAt(position(path), path, WHY));
  }
  return out;
}

/** The PlanGuard `serve` adds when a decision listener is configured: at start-up and on every reload. */
export function concurrencyGuard(plan: Plan, position: (path: KeyPath) => SourcePosition): Promise<readonly Diagnostic[]> {
  return Promise.resolve(concurrencyDiagnostics(plan, position));
}
