// Request latency percentiles per tenant, in this process, with bounded memory and no allocation
// per request: a log-bucketed histogram (each bucket 4% wide, so a percentile is within 4%) per
// tenant and window. Two windows rotate: what is reported covers the last one to two windows.

const GROWTH = 1.04;
const LOG_GROWTH = Math.log(GROWTH);
const MIN_MS = 0.05;
/** Buckets from MIN_MS to ten minutes; slower requests land in the last one. */
const BUCKETS = Math.ceil(Math.log(600_000 / MIN_MS) / LOG_GROWTH) + 1;

export class LatencyHistogram {
  readonly #counts = new Uint32Array(BUCKETS);
  count = 0;

  record(ms: number): void {
    const i = ms <= MIN_MS ? 0 : Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / MIN_MS) / LOG_GROWTH));
    this.#counts[i]!++;
    this.count++;
  }

  add(other: LatencyHistogram): void {
    for (let i = 0; i < BUCKETS; i++) this.#counts[i]! += other.#counts[i]!;
    this.count += other.count;
  }

  /** The `q`-quantile (0..1) in ms: the upper bound of the bucket holding it; 0 when empty. */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.#counts[i]!;
      if (seen >= rank) return Math.round(MIN_MS * GROWTH ** i * 1000) / 1000;
    }
    return Math.round(MIN_MS * GROWTH ** (BUCKETS - 1) * 1000) / 1000;
  }
}

export interface LatencySummary {
  readonly count: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** The span covered: requests that ended within the last this many seconds (at most), on this replica. */
  readonly windowSeconds: number;
}

/** More tenants than this in one window and the rest are not tracked until the next one. */
const MAX_TENANTS = 5_000;

export class TenantLatency {
  readonly #windowMs: number;
  readonly #now: () => number;
  #current = new Map<string, LatencyHistogram>();
  #previous = new Map<string, LatencyHistogram>();
  #since: number;

  constructor(windowMs = 300_000, now: () => number = () => performance.now()) {
    this.#windowMs = windowMs;
    this.#now = now;
    this.#since = now();
  }

  record(tenant: string, ms: number): void {
    const now = this.#now();
    if (now - this.#since >= this.#windowMs) this.#rotate(now);
    let h = this.#current.get(tenant);
    if (h === undefined) {
      if (this.#current.size >= MAX_TENANTS) return;
      this.#current.set(tenant, (h = new LatencyHistogram()));
    }
    h.record(ms);
  }

  /** Percentiles of the tenant's requests over the last one to two windows; undefined: none. */
  summary(tenant: string): LatencySummary | undefined {
    const now = this.#now();
    if (now - this.#since >= this.#windowMs) this.#rotate(now);
    const merged = new LatencyHistogram();
    const cur = this.#current.get(tenant);
    const prev = this.#previous.get(tenant);
    if (cur !== undefined) merged.add(cur);
    if (prev !== undefined) merged.add(prev);
    if (merged.count === 0) return undefined;
    return { count: merged.count, p50Ms: merged.quantile(0.5), p95Ms: merged.quantile(0.95), p99Ms: merged.quantile(0.99), windowSeconds: Math.ceil((now - this.#since + this.#windowMs) / 1000) };
  }

  #rotate(now: number): void {
    // Idle for two windows or more: nothing recent is left.
    this.#previous = now - this.#since >= 2 * this.#windowMs ? new Map() : this.#current;
    this.#current = new Map();
    this.#since = now;
  }
}
