// The limits stage: one store call per request for every limit that applies (route buckets, the
// tenant tier's bucket, quota and a concurrency slot). High-rate buckets are leased: one call takes
// a small batch of tokens and this replica spends them locally until they run out or expire, so a
// busy route costs a fraction of a round trip per request without ever admitting more than the limit.
//
// When the store fails, `store.onError` decides. With leases that means: tokens the store granted
// before it failed may still be spent here for at most LEASE_TTL_MS after the call that granted
// them, never more tokens than it granted; quotas and concurrency are never leased, so a request
// that needs one of them meets the fault at once. A fault is a 503 or a flagged allow, never a 429.
import type { Logger } from 'pino';
import type { RequestContext } from '../core/context.js';
import { credentialKey } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import type { EventBus } from '../events.js';
import { ipKey } from '../ip-address.js';
import { storeCallDuration, storeDegraded, storeErrorsTotal } from '../observability/metrics.js';
import { firstHeader } from '../request-headers.js';
import type { LimitsPlan, RouteBucketPlan } from './compile.js';
import { routeBucketKey } from './keys.js';
import { Leases } from './leases.js';
import { SlotKeeper } from './slots.js';
import type { BucketCheck, LimitCheck, LimitResult, StoreHolder } from './store.js';
import { Templates } from './templates.js';

const STORE_UNAVAILABLE = deny('STORE_UNAVAILABLE');

export function createLimitsStage(holder: StoreHolder, logger?: Logger, bus?: EventBus): Stage {
  return new LimitsStage(holder, logger, bus);
}

class LimitsStage implements Stage {
  readonly name = 'limits';
  readonly #holder: StoreHolder;
  readonly #logger: Logger | undefined;
  readonly #bus: EventBus | undefined;
  readonly #leases = new Leases();
  readonly #templates = new Templates();
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
    const t = this.#templates.of(plan, route.index, ctx.principal?.tenant);
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
    const concurrency = c === undefined ? undefined : { key: c.key, limit: c.limit, ttlMs: c.ttlMs, slot: this.#slots.next() };

    if (leaseKey !== undefined) {
      if (this.#spend(ctx, leaseKey)) return CONTINUE;
      const refill = this.#refills.get(leaseKey);
      if (refill !== undefined) {
        // Wait for the refill in flight, then spend from it; if it ran dry ask the store ourselves,
        // and if the store failed it, meet the same fault (no second wait for a failing store).
        const key = leaseKey;
        return refill.then((fault) => {
          if (this.#spend(ctx, key)) return CONTINUE;
          return fault === undefined ? this.#ask(ctx, plan, buckets, t.quota, concurrency, t.policies, key, t.tokens) : this.#fault(ctx, plan, fault, undefined);
        });
      }
    }
    return this.#ask(ctx, plan, buckets, t.quota, concurrency, t.policies, leaseKey, t.tokens);
  }

  #spend(ctx: RequestContext, leaseKey: string): boolean {
    const state = this.#leases.spend(leaseKey);
    if (state === undefined) return false;
    ctx.limits = state;
    return true;
  }

  #ask(
    ctx: RequestContext,
    plan: LimitsPlan,
    buckets: readonly BucketCheck[],
    quota: LimitCheck['quota'],
    concurrency: LimitCheck['concurrency'],
    policies: readonly string[],
    leaseKey: string | undefined,
    tokens: LimitCheck['tokens'],
  ): Outcome | Promise<Outcome> {
    const check: LimitCheck = { buckets, quota, concurrency, tokens };
    const store = this.#holder.store;
    // A store that can answer at once (the embedded one) does: no promise for a request that needs no I/O.
    if (store.checkSync !== undefined) return this.#decide(ctx, check, store.checkSync(check), policies, leaseKey);
    const started = performance.now();
    const call = store.check(check);
    const pending = call.then(
      (r) => {
        storeCallDuration.observe((performance.now() - started) / 1000);
        return this.#decide(ctx, check, r, policies, leaseKey);
      },
      (err: unknown) => this.#fault(ctx, plan, err, concurrency),
    );
    if (leaseKey !== undefined && !this.#refills.has(leaseKey)) {
      const refill = pending.then(() =>
        call.then(
          () => undefined,
          (err: unknown) => err ?? new Error('limits store failed'),
        ),
      );
      this.#refills.set(leaseKey, refill);
      // Both ways: `finally` would hand a rejection (a fault in deciding) on to a promise nobody awaits.
      const forget = (): void => void this.#refills.delete(leaseKey);
      refill.then(forget, forget);
    }
    return pending;
  }

  #decide(ctx: RequestContext, check: LimitCheck, r: LimitResult, policies: readonly string[], leaseKey: string | undefined): Outcome {
    if (this.#degraded) this.#recovered();
    const policyHeader = policies.join(', ');
    const b = r.bucket >= 0 ? check.buckets[r.bucket] : undefined;
    const headers: Record<string, string> = {};
    if (policyHeader !== '') headers['ratelimit-policy'] = policyHeader;
    if (b !== undefined) headers.ratelimit = `"${b.policy}";r=${Math.max(0, r.remaining)};t=${r.resetS}`;
    else if (r.code === 'TOKEN_QUOTA_EXCEEDED') headers.ratelimit = `"tokens";r=0;t=${r.retryAfterS}`;
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
      this.#leases.grant(leaseKey, spare, headers);
    }
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
