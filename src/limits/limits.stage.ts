// The limits stage: one store call per request for every limit that applies (route buckets, the
// tenant tier's bucket, quota and a concurrency slot). High-rate buckets are leased: one call takes
// a small batch of tokens and this replica spends them locally until they run out or expire, so a
// busy route costs a fraction of a round trip per request without ever admitting more than the limit.
//
// When the store fails, `store.onError` decides. With leases that means: tokens the store granted
// before it failed may still be spent here for at most LEASE_TTL_MS after the call that granted
// them, never more tokens than it granted; quotas and concurrency are never leased, so a request
// that needs one of them meets the fault at once. A fault is a 503 or a flagged allow, never a 429.
import { concurrencyKey, quotaKey, routeBucketKey, tenantTag, tierBucketKey } from './keys.js';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { deny, type Deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import type { LimitState, RequestContext } from '../core/context.js';
import type { EventBus } from '../events.js';
import { storeCallDuration, storeDegraded, storeErrorsTotal } from '../observability/metrics.js';
import type { LimitsPlan, RouteBucketPlan, TierPlan } from './compile.js';
import type { BucketCheck, LimitCheck, LimitResult, StoreHolder } from './store.js';
import { MemoryStore } from './memory-store.js';
import { ipKey } from '../ip-address.js';
import { firstHeader } from '../request-headers.js';
import { credentialKey } from '../core/principal.js';
import { SlotKeeper } from './slots.js';

/**
 * Unspent leased tokens are dropped this long after the store granted them: a lease never outlives
 * a short burst, and with `onError: deny` this is how long a replica may go on admitting requests
 * from a lease once the store stops answering.
 */
const LEASE_TTL_MS = 100;
const STORE_UNAVAILABLE = deny('STORE_UNAVAILABLE');
const instance = randomBytes(4).toString('hex');
let slotCounter = 0;

interface Lease {
  tokens: number;
  expires: number;
  /** Shared by every request the lease admits: headers only, nothing to release. */
  readonly state: LimitState;
}

/** What the limits of one route and tenant are, precomputed (see LimitsStage.#templateOf). */
interface Template {
  readonly tag: string;
  /** The buckets whose keys do not depend on the request (the tier's). */
  readonly buckets: readonly BucketCheck[];
  /** Route buckets, whose keys name who is asking; undefined when the route has none. */
  readonly routeBuckets: readonly RouteBucketPlan[] | undefined;
  readonly policies: readonly string[];
  readonly quota: LimitCheck['quota'];
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
  const concurrency = tier?.concurrency === undefined ? undefined : Object.freeze({ key: concurrencyKey(tag), limit: tier.concurrency, ttlMs: plan.slotTtlMs });
  if (quota !== undefined || concurrency !== undefined) leasable = false;
  const fixedKey = buckets.length === 1 ? buckets[0]!.key : buckets.map((b) => b.key).join('|');
  return Object.freeze({
    tag,
    buckets: Object.freeze(buckets),
    routeBuckets,
    policies: Object.freeze(policies),
    quota,
    concurrency,
    leasable,
    leaseKey: leasable && routeBuckets === undefined ? fixedKey : undefined,
  });
}

export function createLimitsStage(holder: StoreHolder, logger?: Logger, bus?: EventBus): Stage {
  return new LimitsStage(holder, logger, bus);
}

class LimitsStage implements Stage {
  readonly name = 'limits';
  readonly #holder: StoreHolder;
  readonly #logger: Logger | undefined;
  readonly #bus: EventBus | undefined;
  readonly #leases = new Map<string, Lease>();
  readonly #templates = new WeakMap<LimitsPlan, Map<number, Map<string, Template>>>();
  /**
   * Lease refills in flight: requests arriving meanwhile wait for that one call instead of each
   * making their own. Resolves to undefined when the store answered, else to its fault.
   */
  readonly #refills = new Map<string, Promise<unknown>>();
  readonly #slots: SlotKeeper;
  #degraded = false;

  constructor(holder: StoreHolder, logger?: Logger, bus?: EventBus) {
    this.#holder = holder;
    this.#logger = logger;
    this.#bus = bus;
    this.#slots = new SlotKeeper(holder.store, logger);
  }

  run(ctx: RequestContext): Outcome | Promise<Outcome> {
    const plan = ctx.plan.limits;
    const route = ctx.route;
    if (plan === undefined || route === undefined) return CONTINUE;
    const t = this.#templateOf(plan, route.index, ctx.principal?.tenant);
    if (t === undefined) return CONTINUE;

    let buckets = t.buckets;
    let leaseKey = t.leaseKey;
    if (t.routeBuckets !== undefined) {
      // Route buckets count by who is asking: their keys are per request.
      const all = buckets.slice();
      for (const b of t.routeBuckets) {
        all.push({ key: routeBucketKey(t.tag, route.name, b.index, identify(ctx, b)), ratePerMs: b.ratePerMs, burst: b.burst, cost: b.cost, lease: b.lease, policy: b.policyName });
      }
      buckets = all;
      if (t.leasable) leaseKey = all.length === 1 ? all[0]!.key : all.map((b) => b.key).join('|');
    }
    const c = t.concurrency;
    const concurrency = c === undefined ? undefined : { key: c.key, limit: c.limit, ttlMs: c.ttlMs, slot: `${instance}:${(slotCounter = (slotCounter + 1) % 1e12)}` };

    if (leaseKey !== undefined) {
      if (this.#spend(ctx, leaseKey)) return CONTINUE;
      const refill = this.#refills.get(leaseKey);
      if (refill !== undefined) {
        // Wait for the refill in flight, then spend from it; if it ran dry ask the store ourselves,
        // and if the store failed it, meet the same fault (no second wait for a failing store).
        const key = leaseKey;
        return refill.then((fault) => {
          if (this.#spend(ctx, key)) return CONTINUE;
          return fault === undefined ? this.#ask(ctx, plan, buckets, t.quota, concurrency, t.policies, key) : this.#fault(ctx, plan, fault, undefined);
        });
      }
    }
    return this.#ask(ctx, plan, buckets, t.quota, concurrency, t.policies, leaseKey);
  }

  /**
   * What applies to one route and tenant, built on first use and kept with the Plan: keys, bucket
   * checks and policy names are the same for every request of that pair, so a request whose lease
   * has tokens left allocates nothing here. undefined: no limit applies.
   */
  #templateOf(plan: LimitsPlan, routeIndex: number, tenant: string | undefined): Template | undefined {
    let byRoute = this.#templates.get(plan);
    if (byRoute === undefined) this.#templates.set(plan, (byRoute = new Map()));
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

  #spend(ctx: RequestContext, leaseKey: string): boolean {
    const lease = this.#leases.get(leaseKey);
    if (lease === undefined || lease.tokens <= 0 || lease.expires <= performance.now()) return false;
    lease.tokens--;
    ctx.limits = lease.state;
    return true;
  }

  #ask(ctx: RequestContext, plan: LimitsPlan, buckets: readonly BucketCheck[], quota: LimitCheck['quota'], concurrency: LimitCheck['concurrency'], policies: readonly string[], leaseKey: string | undefined): Outcome | Promise<Outcome> {
    const check: LimitCheck = { buckets, quota, concurrency };
    const store = this.#holder.store;
    if (store instanceof MemoryStore) return this.#decide(ctx, plan, check, store.checkSync(check), policies, leaseKey, undefined);
    const started = performance.now();
    const call = store.check(check);
    const pending = call.then(
      (r) => {
        storeCallDuration.observe((performance.now() - started) / 1000);
        return this.#decide(ctx, plan, check, r, policies, leaseKey, undefined);
      },
      (err: unknown) => this.#fault(ctx, plan, err, concurrency),
    );
    if (leaseKey !== undefined && !this.#refills.has(leaseKey)) {
      const refill = pending.then(() => call.then(() => undefined, (err: unknown) => err ?? new Error('limits store failed')));
      this.#refills.set(leaseKey, refill);
      // Both ways: `finally` would hand a rejection (a fault in deciding) on to a promise nobody awaits.
      const forget = (): void => void this.#refills.delete(leaseKey);
      refill.then(forget, forget);
    }
    return pending;
  }

  #decide(ctx: RequestContext, plan: LimitsPlan, check: LimitCheck, r: LimitResult, policies: readonly string[], leaseKey: string | undefined, tier: TierPlan | undefined): Outcome {
    if (this.#degraded) this.#recovered();
    const policyHeader = policies.join(', ');
    const b = r.bucket >= 0 ? check.buckets[r.bucket] : undefined;
    const headers: Record<string, string> = {};
    if (policyHeader !== '') headers['ratelimit-policy'] = policyHeader;
    if (b !== undefined) headers.ratelimit = `"${b.policy}";r=${Math.max(0, r.remaining)};t=${r.resetS}`;
    if (!r.allowed) {
      headers['retry-after'] = String(r.retryAfterS);
      ctx.note(this.name, `${r.code} (retry after ${r.retryAfterS}s)`);
      return deny(r.code ?? 'RATE_LIMITED', undefined, headers) as Deny;
    }
    const conc = check.concurrency;
    if (conc !== undefined) {
      if (ctx.gone) {
        // The client went away while the check was in flight: the request has already settled and
        // would never release the slot the check just took.
        this.#slots.abandon(conc.key, conc.slot, conc.ttlMs, 'ended');
        return CONTINUE;
      }
      this.#slots.hold(conc.key, conc.slot, conc.ttlMs);
    }
    const slots = this.#slots;
    ctx.limits = { headers, release: conc === undefined ? undefined : () => slots.release(conc.key, conc.slot), degraded: false };
    if (leaseKey !== undefined) {
      let spare = Infinity;
      for (let i = 0; i < check.buckets.length; i++) spare = Math.min(spare, (r.granted[i] ?? 1) - check.buckets[i]!.cost);
      if (spare > 0) this.#leases.set(leaseKey, { tokens: spare, expires: performance.now() + LEASE_TTL_MS, state: { headers, release: undefined, degraded: false } });
      if (this.#leases.size > 50_000) this.#leases.clear();
    }
    void plan;
    void tier;
    return CONTINUE;
  }

  #fault(ctx: RequestContext, plan: LimitsPlan, err: unknown, concurrency: LimitCheck['concurrency']): Outcome {
    storeErrorsTotal.labels('check').inc();
    // Redis may still have run the check before its deadline: whatever slot it took goes back.
    if (concurrency !== undefined) this.#slots.abandon(concurrency.key, concurrency.slot, concurrency.ttlMs, 'abandoned');
    if (!this.#degraded) {
      this.#degraded = true;
      storeDegraded.set(1);
      const message = err instanceof Error ? err.message : String(err);
      this.#logger?.warn({ err: message, onError: plan.onError }, 'limits store failing; applying store.onError until it recovers');
      this.#bus?.publish({ type: 'store.degraded', error: message });
    }
    if (plan.onError === 'deny') {
      ctx.note(this.name, 'store unavailable: onError deny');
      return STORE_UNAVAILABLE;
    }
    ctx.note(this.name, 'store unavailable: onError allow (flagged)');
    ctx.limits = { headers: undefined, release: undefined, degraded: true };
    return CONTINUE;
  }

  #recovered(): void {
    this.#degraded = false;
    storeDegraded.set(0);
    this.#logger?.info('limits store recovered');
    this.#bus?.publish({ type: 'store.recovered' });
  }
}

/** The identifier a route bucket counts by; a request without it shares one bucket ("-"). */
function identify(ctx: RequestContext, b: RouteBucketPlan): string {
  switch (b.by) {
    case 'principal':
      return ctx.principal?.subject ?? '-';
    case 'tenant':
      return ctx.principal?.tenant ?? '-';
    case 'key':
      return credentialKey(ctx.principal);
    case 'ip':
      return ipKey(ctx.clientIp, b.ipv6Prefix) || '-';
    default: {
      const v = firstHeader(ctx.rawHeaders, b.header!);
      return v !== undefined && v !== '' ? encodeURIComponent(v) : '-';
    }
  }
}
