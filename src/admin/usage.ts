// GET /admin/tenants/:id/usage — quota used/remaining in the current window, the tier bucket's
// level, the concurrency slots in use and the metered tokens (this window's and per UTC day), as
// the store sees them now; and latency percentiles of the tenant's recent requests on this replica.

import type { Plan } from '../core/plan.js';
import { concurrencyKey, quotaKey, tenantTag, tierBucketKey, tokenDaysKey, tokenSpendKey } from '../limits/keys.js';
import type { StoreHolder } from '../limits/store.js';
import type { TenantLatency } from '../observability/latency.js';
import type { RegisterRoute } from './routes.js';

export function usageRoutes(route: RegisterRoute, holder: StoreHolder, plan: () => Plan, latency?: TenantLatency): void {
  route('GET', '/admin/tenants/:id/usage', async (req) => {
    const tenant = req.params.id!;
    const limits = plan().limits;
    const tier = limits === undefined ? undefined : (limits.members.get(tenant) ?? limits.defaultTier);
    if (limits === undefined || tier === undefined) {
      return { status: 404, problem: { title: 'Not Found', detail: `tenant "${tenant}" has no tier limits in the running policy` } };
    }
    const tag = tenantTag(limits.prefix, tenant);
    const usage = await holder.store.usage({
      tenant,
      quota: tier.quota === undefined ? undefined : { key: quotaKey(tag), limit: tier.quota.limit, window: tier.quota.window },
      buckets: tier.ratePerMs === undefined ? [] : [{ key: tierBucketKey(tag, tier.name), burst: tier.burst, ratePerMs: tier.ratePerMs }],
      concurrency: tier.concurrency === undefined ? undefined : { key: concurrencyKey(tag), limit: tier.concurrency },
      tokens: { key: tokenSpendKey(tag), daysKey: tokenDaysKey(tag), window: tier.tokens?.window ?? 'month', limit: tier.tokens?.limit },
    });
    // Latency is this replica's alone (kept in memory: a store write per request would cost more than it tells).
    return { status: 200, body: { tier: tier.name, store: holder.store.kind, ...usage, latency: latency?.summary(tenant) ?? null } };
  });
}
