// The limits stage: one store call per request for every limit that applies (route buckets, the
// tenant tier's bucket, quota and a concurrency slot). High-rate buckets are leased: one call takes
// a small batch of tokens and this replica spends them locally until they run out or expire, so a
// busy route costs a fraction of a round trip per request without ever admitting more than the limit.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { deny, type Deny } from '../errors.js';
import { CONTINUE, type Outcome, type Stage } from '../pipeline.js';
import type { RequestContext } from '../context.js';
import type { EventBus } from '../events.js';
import { storeCallDuration, storeDegraded, storeErrorsTotal } from '../observability/metrics.js';
import type { LimitsPlan, RouteBucketPlan, TierPlan } from './compile.js';
import type { BucketCheck, LimitCheck, LimitResult, LimitStore } from './store.js';
import { MemoryStore } from './memory-store.js';

/** Unspent leased tokens are dropped after this: a lease never outlives a short burst. */
const LEASE_TTL_MS = 100;
const STORE_UNAVAILABLE = deny('STORE_UNAVAILABLE');
const instance = randomBytes(4).toString('hex');
let slotCounter = 0;

interface Lease {
  tokens: number;
  expires: number;
  headers: Readonly<Record<string, string>>;
}

/** Holds the long-lived store: survives Plan swaps (a changed store.url needs a restart). */
export interface StoreHolder {
  readonly store: LimitStore;
}

export class LimitsStage implements Stage {
  readonly name = 'limits';
  readonly #holder: StoreHolder;
  readonly #logger: Logger | undefined;
  readonly #bus: EventBus | undefined;
  readonly #leases = new Map<string, Lease>();
  /** Lease refills in flight: requests arriving meanwhile wait for that one call instead of each making their own. */
  readonly #refills = new Map<string, Promise<unknown>>();
  #degraded = false;

  constructor(holder: StoreHolder, logger?: Logger, bus?: EventBus) {
    this.#holder = holder;
    this.#logger = logger;
    this.#bus = bus;
  }

  run(ctx: RequestContext): Outcome | Promise<Outcome> {
    const plan = ctx.plan.limits;
    if (plan === undefined || ctx.route === undefined) return CONTINUE;
    const routeBuckets = plan.routes.get(ctx.route.index);
    const tenant = ctx.principal?.tenant;
    const tier = tenant === undefined ? undefined : (plan.members.get(tenant) ?? plan.defaultTier);
    if (routeBuckets === undefined && tier === undefined) return CONTINUE;

    const tag = `${plan.prefix}{t:${tenant ?? '-'}}`;
    const buckets: BucketCheck[] = [];
    let leasable = true;
    const policies: string[] = [];
    if (tier !== undefined && tier.ratePerMs !== undefined) {
      buckets.push({ key: `${tag}:tier:${tier.name}`, ratePerMs: tier.ratePerMs, burst: tier.burst, cost: 1, lease: tier.lease, policy: 'tier' });
      policies.push(tier.policyHeader!);
      if (tier.lease <= 1) leasable = false;
    }
    if (routeBuckets !== undefined) {
      for (const b of routeBuckets) {
        buckets.push({ key: `${tag}:r:${ctx.route.name}:${b.index}:${identify(ctx, b)}`, ratePerMs: b.ratePerMs, burst: b.burst, cost: b.cost, lease: b.lease, policy: b.policyName });
        policies.push(b.policyHeader);
        if (b.lease <= b.cost) leasable = false;
      }
    }
    const quota = tier?.quota === undefined ? undefined : { key: `${tag}:quota`, limit: tier.quota.limit, window: tier.quota.window };
    const concurrency = tier?.concurrency === undefined ? undefined : { key: `${tag}:conc`, limit: tier.concurrency, ttlMs: plan.slotTtlMs, slot: `${instance}:${(slotCounter = (slotCounter + 1) % 1e12)}` };
    if (quota !== undefined || concurrency !== undefined) leasable = false;

    const leaseKey = leasable ? (buckets.length === 1 ? buckets[0]!.key : buckets.map((b) => b.key).join('|')) : undefined;
    if (leaseKey !== undefined) {
      if (this.#spend(ctx, leaseKey)) return CONTINUE;
      const refill = this.#refills.get(leaseKey);
      if (refill !== undefined) {
        // Wait for the refill in flight, then spend from it; only if it ran dry ask the store ourselves.
        return refill.then(() => (this.#spend(ctx, leaseKey) ? CONTINUE : this.#ask(ctx, plan, buckets, quota, concurrency, policies, leaseKey)));
      }
    }
    return this.#ask(ctx, plan, buckets, quota, concurrency, policies, leaseKey);
  }

  #spend(ctx: RequestContext, leaseKey: string): boolean {
    const lease = this.#leases.get(leaseKey);
    if (lease === undefined || lease.tokens <= 0 || lease.expires <= performance.now()) return false;
    lease.tokens--;
    ctx.limits = { headers: lease.headers, release: undefined, degraded: false };
    return true;
  }

  #ask(ctx: RequestContext, plan: LimitsPlan, buckets: BucketCheck[], quota: LimitCheck['quota'], concurrency: LimitCheck['concurrency'], policies: string[], leaseKey: string | undefined): Outcome | Promise<Outcome> {
    const check: LimitCheck = { buckets, quota, concurrency };
    const store = this.#holder.store;
    if (store instanceof MemoryStore) return this.#decide(ctx, plan, check, store.checkSync(check), policies, leaseKey, undefined);
    const started = performance.now();
    const pending = store.check(check).then(
      (r) => {
        storeCallDuration.observe((performance.now() - started) / 1000);
        return this.#decide(ctx, plan, check, r, policies, leaseKey, undefined);
      },
      (err: unknown) => this.#fault(ctx, plan, err),
    );
    if (leaseKey !== undefined && !this.#refills.has(leaseKey)) {
      this.#refills.set(leaseKey, pending);
      void pending.finally(() => this.#refills.delete(leaseKey));
    }
    return pending;
  }

  #decide(ctx: RequestContext, plan: LimitsPlan, check: LimitCheck, r: LimitResult, policies: string[], leaseKey: string | undefined, tier: TierPlan | undefined): Outcome {
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
    const store = this.#holder.store;
    ctx.limits = { headers, release: conc === undefined ? undefined : () => store.release(conc.key, conc.slot), degraded: false };
    if (leaseKey !== undefined) {
      let spare = Infinity;
      for (let i = 0; i < check.buckets.length; i++) spare = Math.min(spare, (r.granted[i] ?? 1) - check.buckets[i]!.cost);
      if (spare > 0) this.#leases.set(leaseKey, { tokens: spare, expires: performance.now() + LEASE_TTL_MS, headers });
      if (this.#leases.size > 50_000) this.#leases.clear();
    }
    void plan;
    void tier;
    return CONTINUE;
  }

  #fault(ctx: RequestContext, plan: LimitsPlan, err: unknown): Outcome {
    storeErrorsTotal.labels('check').inc();
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
      return ctx.principal?.keyId ?? '-';
    case 'ip':
      return ctx.clientIp || '-';
    default: {
      const v = ctx.req.headers[b.header!];
      return typeof v === 'string' && v !== '' ? encodeURIComponent(v) : '-';
    }
  }
}
