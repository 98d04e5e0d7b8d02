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
import { credentialKey, type KeyLimits } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import type { EventBus } from '../events.js';
import { ipKey } from '../ip-address.js';
import { storeCallDuration, storeDegraded, storeErrorsTotal } from '../observability/metrics.js';
import { firstHeader } from '../request-headers.js';
import type { LimitsPlan, RouteBucketPlan } from './compile.js';
import { DEFAULT_PREFIX, keyBucketKey, keyQuotaKey, routeBucketKey, tenantTag } from './keys.js';
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
    const route = ctx.route;
    if (route === undefined) return CONTINUE;
    const plan = ctx.plan.limits;
    const keyLimits = ctx.principal?.limits;
    const t = plan === undefined ? undefined : this.#templates.of(plan, route.index, ctx.principal?.tenant);
    if (t === undefined) return keyLimits === undefined ? CONTINUE : this.#keyOnly(ctx, plan ?? KEY_ONLY, keyLimits);

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
    if (keyLimits !== undefined) {
      // The key's own limits join the same call; never leased (its quota is exact).
      const k = withKeyLimits(t.tag, ctx.principal!.keyId ?? '-', keyLimits, buckets, t.policies);
      return this.#ask(ctx, plan!, k.buckets, t.quota, concurrency, k.policies, undefined, t.tokens, k.keyQuota);
    }

    if (leaseKey !== undefined) {
      if (this.#spend(ctx, leaseKey)) return CONTINUE;
      const refill = this.#refills.get(leaseKey);
      if (refill !== undefined) {
        // Wait for the refill in flight, then spend from it; if it ran dry ask the store ourselves,
        // and if the store failed it, meet the same fault (no second wait for a failing store).
        const key = leaseKey;
        return refill.then((fault) => {
          if (this.#spend(ctx, key)) return CONTINUE;
          return fault === undefined ? this.#ask(ctx, plan!, buckets, t.quota, concurrency, t.policies, key, t.tokens) : this.#fault(ctx, plan!, fault, undefined);
        });
      }
    }
    return this.#ask(ctx, plan!, buckets, t.quota, concurrency, t.policies, leaseKey, t.tokens);
  }

  /** A key with limits where neither a tier nor the route limits anything. */
  #keyOnly(ctx: RequestContext, plan: Pick<LimitsPlan, 'onError' | 'prefix'>, keyLimits: KeyLimits): Outcome | Promise<Outcome> {
    const p = ctx.principal!;
    const k = withKeyLimits(tenantTag(plan.prefix, p.tenant ?? '-'), p.keyId ?? '-', keyLimits, [], []);
    return this.#ask(ctx, plan, k.buckets, undefined, undefined, k.policies, undefined, undefined, k.keyQuota);
  }

  #spend(ctx: RequestContext, leaseKey: string): boolean {
    const state = this.#leases.spend(leaseKey);
    if (state === undefined) return false;
    ctx.limits = state;
    return true;
  }

  #ask(
    ctx: RequestContext,
    plan: Pick<LimitsPlan, 'onError'>,
    buckets: readonly BucketCheck[],
    quota: LimitCheck['quota'],
    concurrency: LimitCheck['concurrency'],
    policies: readonly string[],
    leaseKey: string | undefined,
    tokens: LimitCheck['tokens'],
    keyQuota?: LimitCheck['keyQuota'],
  ): Outcome | Promise<Outcome> {
    const check: LimitCheck = { buckets, quota, concurrency, tokens, keyQuota };
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

  #fault(ctx: RequestContext, plan: Pick<LimitsPlan, 'onError'>, err: unknown, concurrency: LimitCheck['concurrency']): Outcome {
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

/** What a key with limits adds to its request's check when no Plan section limits anything. */
const KEY_ONLY = Object.freeze({ onError: 'allow' as const, prefix: DEFAULT_PREFIX });

function withKeyLimits(
  tag: string,
  keyId: string,
  l: KeyLimits,
  buckets: readonly BucketCheck[],
  policies: readonly string[],
): { buckets: readonly BucketCheck[]; policies: readonly string[]; keyQuota: LimitCheck['keyQuota'] } {
  let b = buckets;
  let p = policies;
  if (l.ratePerMs !== undefined) {
    b = [...buckets, { key: keyBucketKey(tag, keyId), ratePerMs: l.ratePerMs, burst: l.burst, cost: 1, lease: 1, policy: 'key' }];
    p = [...policies, l.policyHeader!];
  }
  return { buckets: b, policies: p, keyQuota: l.quota === undefined ? undefined : { key: keyQuotaKey(tag, keyId), limit: l.quota.limit, window: l.quota.window } };
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
