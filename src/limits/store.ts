// The store contract (DESIGN.md, "State: the store contract"): ONE call per request evaluates every
// limit that applies — token buckets, the tenant's quota, a concurrency slot — atomically, and
// answers allow/deny with what the response headers need. Two implementations: MemoryStore (the
// embedded default, one instance) and RedisStore (one EVALSHA; many replicas share one limit).
//
// Room for leased mode: a bucket check may ask for `lease` tokens instead of `cost`; the store debits
// what it can grant (≥ cost) and says how many it granted, and the caller spends them locally.
// Admitted requests never exceed the tokens debited, so a lease never admits more than the limit.
import type { QuotaWindow } from '../policy/values.js';

export interface BucketCheck {
  /** Full store key, e.g. `portcullis:{t:acme}:tier`. All keys of one call share one hash tag. */
  readonly key: string;
  /** Tokens per millisecond. */
  readonly ratePerMs: number;
  readonly burst: number;
  /** Tokens this request needs. */
  readonly cost: number;
  /** Tokens to take when available (≥ cost); the store grants between cost and lease. */
  readonly lease: number;
  /** Policy name for the RateLimit headers. */
  readonly policy: string;
}

interface QuotaCheck {
  readonly key: string;
  readonly limit: number;
  readonly window: QuotaWindow;
}

interface ConcurrencyCheck {
  readonly key: string;
  readonly limit: number;
  /** A slot not renewed (refreshSlots) for this long expires: its replica died. */
  readonly ttlMs: number;
  /** Unique id of this request's slot. */
  readonly slot: string;
}

/**
 * A token quota: admitted while the spend charged so far in the window is below the limit. The check
 * only reads; charge() adds what a response consumed once it has ended.
 */
interface TokenCheck {
  /** The tenant's token spend (tokenSpendKey). */
  readonly key: string;
  readonly limit: number;
  readonly window: QuotaWindow;
}

export interface LimitCheck {
  readonly buckets: readonly BucketCheck[];
  readonly quota: QuotaCheck | undefined;
  /** The API key's own quota, counted with the tier's (a refusal by either counts neither). */
  readonly keyQuota?: QuotaCheck | undefined;
  readonly concurrency: ConcurrencyCheck | undefined;
  /** Absent: no token quota applies. */
  readonly tokens?: TokenCheck | undefined;
}

export type LimitCode = 'RATE_LIMITED' | 'QUOTA_EXCEEDED' | 'CONCURRENCY_EXCEEDED' | 'TOKEN_QUOTA_EXCEEDED';

/** What a metered response consumed, charged after it ended. */
export interface TokenCharge {
  /** The tenant's token spend in its window (tokenSpendKey). */
  readonly key: string;
  /** The tenant's tokens per UTC day (tokenDaysKey), kept for DAYS_KEPT days. */
  readonly daysKey: string;
  readonly window: QuotaWindow;
  readonly tokens: number;
}

/** How many UTC days of token spend the store keeps per tenant. */
export const DAYS_KEPT = 400;

export interface LimitResult {
  readonly allowed: boolean;
  readonly code: LimitCode | undefined;
  /** Seconds until retrying can succeed (denials). */
  readonly retryAfterS: number;
  /** Index into buckets of the most restrictive bucket (-1 when none). */
  readonly bucket: number;
  /** Tokens left in that bucket after this request. */
  readonly remaining: number;
  /** Seconds until that bucket is full again. */
  readonly resetS: number;
  /** Tokens granted for each bucket (lease), in order; cost when no lease was asked for. */
  readonly granted: readonly number[];
}

export interface TenantUsage {
  readonly tenant: string;
  readonly quota: { readonly window: QuotaWindow; readonly limit: number; readonly used: number; readonly remaining: number } | undefined;
  readonly buckets: readonly { readonly key: string; readonly tokens: number; readonly burst: number }[];
  readonly concurrency: { readonly limit: number; readonly inUse: number } | undefined;
  /** Tokens charged in the current window (limit and remaining when a token quota applies). */
  readonly tokens?: { readonly window: QuotaWindow; readonly used: number; readonly limit: number | undefined; readonly remaining: number | undefined } | undefined;
  /** Tokens charged per UTC day (`YYYY-MM-DD`), oldest first, days without spend left out. */
  readonly tokensByDay?: readonly { readonly day: string; readonly tokens: number }[] | undefined;
}

export interface UsageQuery {
  readonly tenant: string;
  readonly quota: QuotaCheck | undefined;
  readonly buckets: readonly { readonly key: string; readonly burst: number; readonly ratePerMs: number }[];
  readonly concurrency: { readonly key: string; readonly limit: number } | undefined;
  readonly tokens?: { readonly key: string; readonly daysKey: string; readonly window: QuotaWindow; readonly limit: number | undefined } | undefined;
}

export interface LimitStore {
  readonly kind: 'memory' | 'redis';
  /**
   * Rejects when the store did not answer in time or failed (see StoreTimeoutError); a rejected
   * check changed nothing, except that a slot it took may still need a release (see SlotKeeper).
   */
  check(req: LimitCheck): Promise<LimitResult>;
  /** The same check answered at once, by a store that needs no I/O for it (the embedded one); absent otherwise. */
  readonly checkSync?: ((req: LimitCheck) => LimitResult) | undefined;
  /** Frees a concurrency slot (finish, abort, error, or a check given up on). Releasing an unknown slot is harmless. */
  release(key: string, slot: string): Promise<void>;
  /**
   * One replica's periodic renewal of the slots of `key`: every `hold` slot expires `ttlMs` from
   * now (re-added if it had expired meanwhile), every `drop` slot is removed.
   */
  refreshSlots(key: string, hold: readonly string[], drop: readonly string[], ttlMs: number): Promise<void>;
  usage(q: UsageQuery): Promise<TenantUsage>;
  /**
   * Adds what a response consumed to its tenant's spend (window and day, on the store's clock);
   * resolves to the window's spend after it. Never on a request's path: called once it has ended.
   */
  charge(c: TokenCharge): Promise<number>;
  /** Lockout (authentication.lockout): ms left of the lockout at `key` (0: not locked out). */
  lockedOut(key: string): Promise<number>;
  /**
   * Counts one authentication failure at `key` (fixed window of `windowMs` from the first failure);
   * the `failures`-th within the window locks the key out for `durationMs`. Returns the ms left of the
   * lockout (0: not locked out). Failures while locked out do not extend the lockout.
   */
  recordFailure(key: string, failures: number, windowMs: number, durationMs: number): Promise<number>;
  /**
   * Waits (at most `maxWaitMs`) until the store can answer a check quickly: connected, scripts
   * loaded. Startup calls it before listening, so the first requests do not spend their short
   * timeout on a connection handshake. Resolves false when the store is not reachable yet.
   */
  warmUp(maxWaitMs: number): Promise<boolean>;
  close(): Promise<void>;
}

/** A store call the proxy stopped waiting for: Redis did not answer within store.timeout. */
/** Holds the long-lived store: survives Plan swaps (a changed store.url needs a restart). */
export interface StoreHolder {
  readonly store: LimitStore;
}

export class StoreTimeoutError extends Error {
  constructor(message = 'limits store did not answer within store.timeout') {
    super(message);
    this.name = 'StoreTimeoutError';
  }
}

/** Start (ms) of the calendar window containing `nowMs`, and its end, in UTC. */
export function windowBounds(window: QuotaWindow, nowMs: number): { start: number; end: number } {
  const d = new Date(nowMs);
  switch (window) {
    case 'minute': {
      const start = nowMs - (nowMs % 60_000);
      return { start, end: start + 60_000 };
    }
    case 'hour': {
      const start = nowMs - (nowMs % 3_600_000);
      return { start, end: start + 3_600_000 };
    }
    case 'day': {
      const start = nowMs - (nowMs % 86_400_000);
      return { start, end: start + 86_400_000 };
    }
    case 'month': {
      const start = Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
      return { start, end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
    }
  }
}

/** `YYYY-MM-DD` of a day number (days since 1970-01-01, UTC). */
export function dayName(day: number): string {
  return new Date(day * 86_400_000).toISOString().slice(0, 10);
}
