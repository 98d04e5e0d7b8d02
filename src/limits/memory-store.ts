// The embedded store: all limits in this process (one instance only). Same semantics as the Redis
// script, checked by the same contract suite. The clock is injectable for window-rollover tests.
import { DAYS_KEPT, dayName, type LimitCheck, type LimitResult, type LimitStore, type TenantUsage, type TokenCharge, type UsageQuery, windowBounds } from './store.js';

interface Bucket {
  tokens: number;
  ts: number;
}

export class MemoryStore implements LimitStore {
  readonly kind = 'memory' as const;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #quotas = new Map<string, { start: number; used: number }>();
  /** Token spend in the current window, and per day number. */
  readonly #tokens = new Map<string, { start: number; used: number }>();
  readonly #tokenDays = new Map<string, Map<number, number>>();
  readonly #slots = new Map<string, Map<string, number>>();
  readonly #lockouts = new Map<string, { n: number; windowEnd: number; until: number }>();

  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  check(req: LimitCheck): Promise<LimitResult> {
    return Promise.resolve(this.checkSync(req));
  }

  /** The whole decision, synchronously (the stage calls this directly: no promise on the hot path). */
  checkSync(req: LimitCheck): LimitResult {
    const now = this.#now();
    const levels: number[] = [];
    let denyBucket = -1;
    let retryMs = 0;
    for (let i = 0; i < req.buckets.length; i++) {
      const b = req.buckets[i]!;
      const state = this.#buckets.get(b.key);
      let tokens = state === undefined ? b.burst : Math.min(b.burst, state.tokens + (now - state.ts) * b.ratePerMs);
      if (tokens < 0) tokens = 0;
      levels.push(tokens);
      if (tokens < b.cost && denyBucket === -1) {
        denyBucket = i;
        retryMs = (b.cost - tokens) / b.ratePerMs;
      }
    }
    if (denyBucket !== -1) return deny('RATE_LIMITED', retryMs, denyBucket, levels, req);

    const q = req.quota;
    let quotaState: { start: number; used: number } | undefined;
    if (q !== undefined) {
      const { start, end } = windowBounds(q.window, now);
      quotaState = this.#quotas.get(q.key);
      if (quotaState === undefined || quotaState.start !== start) this.#quotas.set(q.key, (quotaState = { start, used: 0 }));
      if (quotaState.used + 1 > q.limit) return deny('QUOTA_EXCEEDED', end - now, -1, levels, req);
    }
    const kq = req.keyQuota;
    let keyQuotaState: { start: number; used: number } | undefined;
    if (kq !== undefined) {
      const { start, end } = windowBounds(kq.window, now);
      keyQuotaState = this.#quotas.get(kq.key);
      if (keyQuotaState === undefined || keyQuotaState.start !== start) this.#quotas.set(kq.key, (keyQuotaState = { start, used: 0 }));
      if (keyQuotaState.used + 1 > kq.limit) return deny('QUOTA_EXCEEDED', end - now, -1, levels, req);
    }
    const tk = req.tokens;
    if (tk !== undefined) {
      const { start, end } = windowBounds(tk.window, now);
      const spent = this.#tokens.get(tk.key);
      if (spent !== undefined && spent.start === start && spent.used >= tk.limit) return deny('TOKEN_QUOTA_EXCEEDED', end - now, -1, levels, req);
    }
    const c = req.concurrency;
    if (c !== undefined) {
      let slots = this.#slots.get(c.key);
      if (slots === undefined) this.#slots.set(c.key, (slots = new Map()));
      for (const [id, expires] of slots) if (expires <= now) slots.delete(id);
      if (slots.size >= c.limit) return deny('CONCURRENCY_EXCEEDED', 1000, -1, levels, req);
      slots.set(c.slot, now + c.ttlMs);
    }
    if (quotaState !== undefined) quotaState.used++;
    if (keyQuotaState !== undefined) keyQuotaState.used++;

    // Commit: debit every bucket (the lease when it is there, else the cost).
    const granted: number[] = [];
    let most = -1;
    let mostRemaining = Infinity;
    let resetS = 0;
    for (let i = 0; i < req.buckets.length; i++) {
      const b = req.buckets[i]!;
      const take = Math.max(b.cost, Math.min(b.lease, Math.floor(levels[i]!)));
      const left = levels[i]! - take;
      granted.push(take);
      const st = this.#buckets.get(b.key);
      if (st === undefined) this.#buckets.set(b.key, { tokens: left, ts: now });
      else {
        st.tokens = left;
        st.ts = now;
      }
      if (left < mostRemaining) {
        mostRemaining = left;
        most = i;
        resetS = Math.ceil((b.burst - left) / b.ratePerMs / 1000);
      }
    }
    return { allowed: true, code: undefined, retryAfterS: 0, bucket: most, remaining: most === -1 ? 0 : Math.floor(mostRemaining), resetS, granted };
  }

  release(key: string, slot: string): Promise<void> {
    this.#slots.get(key)?.delete(slot);
    return Promise.resolve();
  }

  refreshSlots(key: string, hold: readonly string[], drop: readonly string[], ttlMs: number): Promise<void> {
    const now = this.#now();
    let slots = this.#slots.get(key);
    if (slots === undefined) {
      if (hold.length === 0) return Promise.resolve();
      this.#slots.set(key, (slots = new Map()));
    }
    for (const [id, expires] of slots) if (expires <= now) slots.delete(id);
    for (const id of hold) slots.set(id, now + ttlMs);
    for (const id of drop) slots.delete(id);
    if (slots.size === 0) this.#slots.delete(key);
    return Promise.resolve();
  }

  async usage(q: UsageQuery): Promise<TenantUsage> {
    const now = this.#now();
    let quota: TenantUsage['quota'];
    if (q.quota !== undefined) {
      const { start } = windowBounds(q.quota.window, now);
      const st = this.#quotas.get(q.quota.key);
      const used = st !== undefined && st.start === start ? st.used : 0;
      quota = { window: q.quota.window, limit: q.quota.limit, used, remaining: Math.max(0, q.quota.limit - used) };
    }
    const buckets = q.buckets.map((b) => {
      const st = this.#buckets.get(b.key);
      const tokens = st === undefined ? b.burst : Math.min(b.burst, st.tokens + (now - st.ts) * b.ratePerMs);
      return { key: b.key, tokens: Math.floor(tokens), burst: b.burst };
    });
    let concurrency: TenantUsage['concurrency'];
    if (q.concurrency !== undefined) {
      const slots = this.#slots.get(q.concurrency.key);
      let inUse = 0;
      if (slots !== undefined) for (const exp of slots.values()) if (exp > now) inUse++;
      concurrency = { limit: q.concurrency.limit, inUse };
    }
    if (q.tokens === undefined) return { tenant: q.tenant, quota, buckets, concurrency };
    const { start } = windowBounds(q.tokens.window, now);
    const spent = this.#tokens.get(q.tokens.key);
    const used = spent !== undefined && spent.start === start ? spent.used : 0;
    const limit = q.tokens.limit;
    const tokens = { window: q.tokens.window, used, limit, remaining: limit === undefined ? undefined : Math.max(0, limit - used) };
    const days = [...(this.#tokenDays.get(q.tokens.daysKey) ?? [])].sort((a, b) => a[0] - b[0]);
    return { tenant: q.tenant, quota, buckets, concurrency, tokens, tokensByDay: days.map(([d, n]) => ({ day: dayName(d), tokens: n })) };
  }

  charge(c: TokenCharge): Promise<number> {
    const now = this.#now();
    const { start } = windowBounds(c.window, now);
    let spent = this.#tokens.get(c.key);
    if (spent === undefined || spent.start !== start) this.#tokens.set(c.key, (spent = { start, used: 0 }));
    spent.used += c.tokens;
    let days = this.#tokenDays.get(c.daysKey);
    if (days === undefined) this.#tokenDays.set(c.daysKey, (days = new Map()));
    const day = Math.floor(now / 86_400_000);
    days.set(day, (days.get(day) ?? 0) + c.tokens);
    days.delete(day - DAYS_KEPT);
    return Promise.resolve(spent.used);
  }

  lockedOut(key: string): Promise<number> {
    const st = this.#lockouts.get(key);
    const now = this.#now();
    return Promise.resolve(st !== undefined && st.until > now ? st.until - now : 0);
  }

  recordFailure(key: string, failures: number, windowMs: number, durationMs: number): Promise<number> {
    const now = this.#now();
    let st = this.#lockouts.get(key);
    if (st !== undefined && st.until > now) return Promise.resolve(st.until - now);
    if (st === undefined || st.windowEnd <= now) {
      if (this.#lockouts.size > 100_000) for (const [k, v] of this.#lockouts) if (v.windowEnd <= now && v.until <= now) this.#lockouts.delete(k);
      this.#lockouts.set(key, (st = { n: 0, windowEnd: now + windowMs, until: 0 }));
    }
    st.n++;
    if (st.n < failures) return Promise.resolve(0);
    st.n = 0;
    st.windowEnd = now;
    st.until = now + durationMs;
    return Promise.resolve(durationMs);
  }

  async warmUp(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {
    this.#buckets.clear();
    this.#tokens.clear();
    this.#tokenDays.clear();
    this.#slots.clear();
    this.#lockouts.clear();
  }
}

function deny(code: LimitResult['code'], retryMs: number, bucket: number, levels: number[], req: LimitCheck): LimitResult {
  const b = bucket === -1 ? undefined : req.buckets[bucket];
  return {
    allowed: false,
    code,
    retryAfterS: Math.max(1, Math.ceil(retryMs / 1000)),
    bucket,
    remaining: b === undefined ? 0 : Math.floor(levels[bucket]!),
    resetS: b === undefined ? 0 : Math.ceil((b.burst - levels[bucket]!) / b.ratePerMs / 1000),
    granted: [],
  };
}
