// The limits store (and the key store beside it) is built once, from the store.url the first policy
// names: a reload cannot move it to another Redis. Such a policy is refused like an invalid one, so
// the hash that /admin/policy and portcullis_policy_info report is always the one that runs.
import type { Plan } from '../core/plan.js';
import type { PlanGuard } from '../policy/manager.js';
import { diagnosticAt } from '../policy/source-map.js';

/** `running`: the store.url the store was built from (undefined: the embedded memory store). */
export function storeUrlGuard(running: string | undefined): PlanGuard<Plan> {
  return (plan, position) => {
    const next = plan.limits?.storeUrl;
    if (next === running) return Promise.resolve([]);
    const path = next === undefined ? ['store'] : ['store', 'url'];
    const message =
      next === undefined
        ? 'the store cannot be changed by a reload: this instance keeps its limits in the Redis it started with; restart Portcullis to use the embedded store'
        : running === undefined
          ? 'store.url cannot be set by a reload: this instance keeps its limits in memory; restart Portcullis to use Redis'
          : 'store.url cannot be changed by a reload: restart Portcullis to use the new store';
    return Promise.resolve([diagnosticAt(position(path), path, message)]);
  };
}
