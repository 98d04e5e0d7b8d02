// What the limits of one route and tenant are, precomputed: keys, bucket checks and policy names
// are the same for every request of that pair, so a request whose lease has tokens left allocates
// nothing. Built on first use and kept with the Plan they were built from.
import type { LimitsPlan, RouteBucketPlan } from './compile.js';
import { concurrencyKey, quotaKey, tenantTag, tierBucketKey, tokenSpendKey } from './keys.js';
import type { BucketCheck, LimitCheck } from './store.js';

export interface Template {
  readonly tag: string;
  /** The buckets whose keys do not depend on the request (the tier's). */
  readonly buckets: readonly BucketCheck[];
  /** Route buckets, whose keys name who is asking; undefined when the route has none. */
  readonly routeBuckets: readonly RouteBucketPlan[] | undefined;
  readonly policies: readonly string[];
  readonly quota: LimitCheck['quota'];
  readonly tokens: LimitCheck['tokens'];
  readonly concurrency: { readonly key: string; readonly limit: number; readonly ttlMs: number } | undefined;
  /** Whether every bucket can be leased (no quota, no concurrency, leases above cost). */
  readonly leasable: boolean;
  /** The lease key when it does not depend on the request. */
  readonly leaseKey: string | undefined;
}

const NO_TENANT = '\u0000none';
const MAX_TEMPLATES_PER_ROUTE = 10_000;
const NO_LIMITS = Object.freeze({}) as Template;

function buildTemplate(plan: LimitsPlan, routeBuckets: readonly RouteBucketPlan[] | undefined, tenant: string | undefined): Template {
  const tier = tenant === undefined ? undefined : (plan.members.get(tenant) ?? plan.defaultTier);
  if (routeBuckets === undefined && tier === undefined) return NO_LIMITS;
  const tag = tenantTag(plan.prefix, tenant ?? '-');
  const buckets: BucketCheck[] = [];
  const policies: string[] = [];
  let leasable = true;
  if (tier !== undefined && tier.ratePerMs !== undefined) {
    buckets.push(Object.freeze({ key: tierBucketKey(tag, tier.name), ratePerMs: tier.ratePerMs, burst: tier.burst, cost: 1, lease: tier.lease, policy: 'tier' }));
    policies.push(tier.policyHeader!);
    if (tier.lease <= 1) leasable = false;
  }
  for (const b of routeBuckets ?? []) {
    policies.push(b.policyHeader);
    if (b.lease <= b.cost) leasable = false;
  }
  const quota = tier?.quota === undefined ? undefined : Object.freeze({ key: quotaKey(tag), limit: tier.quota.limit, window: tier.quota.window });
  const tk = tier?.tokens;
  const tokens = tk?.limit === undefined ? undefined : Object.freeze({ key: tokenSpendKey(tag), limit: tk.limit, window: tk.window });
  if (tokens !== undefined) policies.push(tk!.policyHeader!);
  const concurrency = tier?.concurrency === undefined ? undefined : Object.freeze({ key: concurrencyKey(tag), limit: tier.concurrency, ttlMs: plan.slotTtlMs });
  if (quota !== undefined || concurrency !== undefined || tokens !== undefined) leasable = false;
  const fixedKey = buckets.length === 1 ? buckets[0]!.key : buckets.map((b) => b.key).join('|');
  return Object.freeze({
    tag,
    buckets: Object.freeze(buckets),
    routeBuckets,
    policies: Object.freeze(policies),
    quota,
    tokens,
    concurrency,
    leasable,
    leaseKey: leasable && routeBuckets === undefined ? fixedKey : undefined,
  });
}

export class Templates {
  readonly #byPlan = new WeakMap<LimitsPlan, Map<number, Map<string, Template>>>();

  /** What applies to `routeIndex` for `tenant`; undefined: no limit applies. */
  of(plan: LimitsPlan, routeIndex: number, tenant: string | undefined): Template | undefined {
    let byRoute = this.#byPlan.get(plan);
    if (byRoute === undefined) this.#byPlan.set(plan, (byRoute = new Map()));
    let byTenant = byRoute.get(routeIndex);
    if (byTenant === undefined) byRoute.set(routeIndex, (byTenant = new Map()));
    const tenantKey = tenant ?? NO_TENANT;
    let t = byTenant.get(tenantKey);
    if (t === undefined) {
      t = buildTemplate(plan, plan.routes.get(routeIndex), tenant);
      // Tenants come from credentials (JWT claims too): bound what one route remembers.
      if (byTenant.size >= MAX_TEMPLATES_PER_ROUTE) byTenant.clear();
      byTenant.set(tenantKey, t);
    }
    return t === NO_LIMITS ? undefined : t;
  }
}
