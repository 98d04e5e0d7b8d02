// A reload applies a changed `audit:` section in place, but cannot turn auditing on or off: the
// recorder and the audit worker exist, or not, from startup. Such a policy is refused like an
// invalid one, so the hash that /admin/policy and portcullis_policy_info report always runs.

import type { Plan } from '../core/plan.js';
import type { PlanGuard } from '../policy/manager.js';
import { diagnosticAt } from '../policy/source-map.js';

export function auditPresenceGuard(running: boolean): PlanGuard<Plan> {
  return (plan, position) => {
    if ((plan.audit !== undefined) === running) return Promise.resolve([]);
    const message = running
      ? 'the audit section cannot be removed by a reload: restart Portcullis to stop auditing (or keep the section with the sinks you want)'
      : 'an audit section cannot be added by a reload: restart Portcullis to start auditing';
    return Promise.resolve([diagnosticAt(position(['audit']), ['audit'], message)]);
  };
}
