// A circuit breaker for one upstream target. Pure: time comes from an injected clock, side effects
// (metrics, logs, events) go through the onTransition callback. Hot path cost is O(1) amortized and
// allocation-free: outcomes land in a fixed ring of time buckets, and a result is tied to the
// "generation" (one per state entered) that admitted it, so late answers from a past state are ignored.

export type BreakerStateName = 'closed' | 'half-open' | 'open';

export interface BreakerSettings {
  /** Open after this many failures in a row (0: trigger off). */
  readonly consecutiveFailures: number;
  /** Open when failures/total ≥ this over the window (undefined: trigger off). */
  readonly errorRate: number | undefined;
  /** The error-rate trigger needs at least this many requests in the window. */
  readonly minRequests: number;
  readonly windowMs: number;
  readonly cooldownMs: number;
  readonly halfOpenProbes: number;
  /** Upstream statuses that count as failures. */
  readonly failOn: ReadonlySet<number>;
}

export const BREAKER_DEFAULTS = Object.freeze({
  consecutiveFailures: 5,
  minRequests: 20,
  windowMs: 10_000,
  cooldownMs: 30_000,
  halfOpenProbes: 1,
  failOn: Object.freeze([502, 503, 504]),
});

export type TransitionListener = (from: BreakerStateName, to: BreakerStateName) => void;

/** Returned by tryAcquire when the breaker refuses. */
export const REFUSED = -1;
const BUCKETS = 10;

export class CircuitBreaker {
  #settings: BreakerSettings;
  readonly #now: () => number;
  readonly #onTransition: TransitionListener | undefined;
  #state: BreakerStateName = 'closed';
  #generation = 0;
  #consecutive = 0;
  #openedAt = 0;
  #probesAdmitted = 0;
  #probesSucceeded = 0;
  // Sliding window: BUCKETS slots of windowMs/BUCKETS each, with running sums.
  #bucketMs: number;
  readonly #total = new Uint32Array(BUCKETS);
  readonly #failed = new Uint32Array(BUCKETS);
  #lastBucket = -1;
  #sumTotal = 0;
  #sumFailed = 0;

  constructor(settings: BreakerSettings, opts: { now?: (() => number) | undefined; onTransition?: TransitionListener | undefined } = {}) {
    this.#settings = settings;
    this.#now = opts.now ?? Date.now;
    this.#onTransition = opts.onTransition;
    this.#bucketMs = Math.max(1, Math.ceil(settings.windowMs / BUCKETS));
  }

  get settings(): BreakerSettings {
    return this.#settings;
  }

  /** The current state, applying a due OPEN → HALF_OPEN transition first. */
  get state(): BreakerStateName {
    this.#checkCooldown(this.#now());
    return this.#state;
  }

  /** New settings after a policy reload; the state and the window survive unless the window changed size. */
  reconfigure(settings: BreakerSettings): void {
    if (settings.windowMs !== this.#settings.windowMs) {
      this.#bucketMs = Math.max(1, Math.ceil(settings.windowMs / BUCKETS));
      this.#resetWindow();
    }
    this.#settings = settings;
  }

  /**
   * Asks to send one request. Returns the generation to pass to `record`/`release`, or REFUSED
   * when the breaker is open (or half-open with every probe already admitted).
   */
  tryAcquire(): number {
    if (this.#state === 'closed') return this.#generation;
    this.#checkCooldown(this.#now());
    if (this.#state === 'half-open' && this.#probesAdmitted < this.#settings.halfOpenProbes) {
      this.#probesAdmitted++;
      return this.#generation;
    }
    return REFUSED;
  }

  /** Milliseconds until the breaker lets a probe through (0 when it would admit now). */
  retryAfterMs(): number {
    if (this.#state !== 'open') return 0;
    return Math.max(0, this.#openedAt + this.#settings.cooldownMs - this.#now());
  }

  /** Whether an upstream answer with this status counts as a failure. */
  isFailureStatus(status: number): boolean {
    return this.#settings.failOn.has(status);
  }

  /** The outcome of a request admitted in `generation`. */
  record(generation: number, failed: boolean): void {
    if (generation !== this.#generation || generation === REFUSED) return;
    const now = this.#now();
    if (this.#state === 'half-open') {
      if (failed) return this.#open(now);
      this.#probesSucceeded++;
      if (this.#probesSucceeded >= this.#settings.halfOpenProbes) this.#transition('closed');
      return;
    }
    if (this.#state !== 'closed') return;
    this.#count(now, failed);
    const s = this.#settings;
    if (failed) {
      this.#consecutive++;
      if (s.consecutiveFailures > 0 && this.#consecutive >= s.consecutiveFailures) return this.#open(now);
      if (s.errorRate !== undefined && this.#sumTotal >= s.minRequests && this.#sumFailed >= s.errorRate * this.#sumTotal) return this.#open(now);
    } else {
      this.#consecutive = 0;
    }
  }

  /** A request admitted in `generation` ended without an outcome (client abort): frees its probe slot. */
  release(generation: number): void {
    if (generation === this.#generation && this.#state === 'half-open' && this.#probesAdmitted > 0) this.#probesAdmitted--;
  }

  #checkCooldown(now: number): void {
    if (this.#state === 'open' && now >= this.#openedAt + this.#settings.cooldownMs) this.#transition('half-open');
  }

  #open(now: number): void {
    this.#openedAt = now;
    this.#transition('open');
  }

  #transition(to: BreakerStateName): void {
    const from = this.#state;
    this.#state = to;
    this.#generation++;
    this.#probesAdmitted = 0;
    this.#probesSucceeded = 0;
    this.#consecutive = 0;
    // A fresh start for the error rate: old failures must not re-open a breaker that just closed.
    if (to === 'closed') this.#resetWindow();
    this.#onTransition?.(from, to);
  }

  #resetWindow(): void {
    this.#total.fill(0);
    this.#failed.fill(0);
    this.#sumTotal = 0;
    this.#sumFailed = 0;
    this.#lastBucket = -1;
  }

  #count(now: number, failed: boolean): void {
    const bucket = Math.floor(now / this.#bucketMs);
    if (bucket !== this.#lastBucket) this.#advance(bucket);
    const slot = bucket % BUCKETS;
    this.#total[slot]!++;
    this.#sumTotal++;
    if (failed) {
      this.#failed[slot]!++;
      this.#sumFailed++;
    }
  }

  /** Expires the buckets between the last one written and `bucket` (at most BUCKETS steps). */
  #advance(bucket: number): void {
    if (this.#lastBucket < 0 || bucket - this.#lastBucket >= BUCKETS || bucket < this.#lastBucket) {
      this.#resetWindow();
    } else {
      for (let b = this.#lastBucket + 1; b <= bucket; b++) {
        const slot = b % BUCKETS;
        this.#sumTotal -= this.#total[slot]!;
        this.#sumFailed -= this.#failed[slot]!;
        this.#total[slot] = 0;
        this.#failed[slot] = 0;
      }
    }
    this.#lastBucket = bucket;
  }
}
