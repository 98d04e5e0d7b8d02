// authentication.lockout: authentication failures (AUTH_INVALID, AUTH_EXPIRED — not AUTH_MISSING,
// not IDP_UNAVAILABLE) are counted per client IP (an IPv6 client per /64, see ip-address.ts) in the limits store; the N-th within `window` locks
// that IP out for `duration`: every request from it to a non-public route is answered 429 LOCKED_OUT
// (Retry-After = seconds left) before credentials are checked.
//
// No store call on the request path: the check reads an in-process map of locked IPs, fed by the
// store's answer to each counted failure (fire and forget, never awaited by a request). A lockout
// made on another replica is learned here on this replica's next failure from that IP. A success does
// not reset any counter (not even the same IP's: a valid key in between does not buy more guesses).
// Store faults while counting only skip the count (and are counted in store errors): never a 401/403.

import type { Logger } from 'pino';
import type { RequestContext } from '../core/context.js';
import type { EventBus } from '../events.js';
import { ipKey } from '../ip-address.js';
import { DEFAULT_PREFIX, lockoutKey } from '../limits/keys.js';
import type { StoreHolder } from '../limits/store.js';
import { storeErrorsTotal } from '../observability/metrics.js';

const COUNTED = new Set(['AUTH_INVALID', 'AUTH_EXPIRED']);
const MAX_LOCAL = 100_000;

export class Lockout {
  readonly #holder: StoreHolder;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #bus: EventBus | undefined;
  /** Locked IPs on this replica: ip → until (Date.now ms). */
  readonly #locked = new Map<string, number>();
  #failing = false;

  constructor(holder: StoreHolder, logger?: Pick<Logger, 'warn'>, bus?: EventBus) {
    this.#holder = holder;
    this.#logger = logger;
    this.#bus = bus;
  }

  /** ms left of this IP's lockout as known on this replica (0: not locked out). */
  lockedFor(ip: string, now = Date.now()): number {
    const until = this.#locked.get(ip);
    if (until === undefined) return 0;
    if (until > now) return until - now;
    this.#locked.delete(ip);
    return 0;
  }

  /** The authenticate stage's failure hook: counts AUTH_INVALID/AUTH_EXPIRED. Never throws, never awaited. */
  onFailure(ctx: RequestContext, code: string): void {
    const plan = ctx.plan.authn?.lockout;
    if (plan === undefined || !COUNTED.has(code)) return;
    const ip = ipKey(ctx.clientIp, plan.ipv6Prefix) || '-';
    const key = lockoutKey(ctx.plan.limits?.prefix ?? DEFAULT_PREFIX, ip);
    let pending: Promise<number>;
    try {
      pending = this.#holder.store.recordFailure(key, plan.failures, plan.windowMs, plan.durationMs);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (ms) => {
        this.#failing = false;
        if (ms > 0) this.#lock(ip, Date.now() + ms);
      },
      (err: unknown) => {
        storeErrorsTotal.labels('lockout').inc();
        if (!this.#failing) {
          this.#failing = true;
          this.#logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'lockout: counting an authentication failure failed (not counted)');
        }
      },
    );
  }

  #lock(ip: string, untilMs: number): void {
    const known = this.#locked.get(ip);
    if (known !== undefined && known > Date.now()) return; // already locked here: one event per lockout per replica
    if (this.#locked.size >= MAX_LOCAL) {
      const now = Date.now();
      for (const [k, u] of this.#locked) if (u <= now) this.#locked.delete(k);
      if (this.#locked.size >= MAX_LOCAL) this.#locked.clear();
    }
    this.#locked.set(ip, untilMs);
    this.#bus?.publish({ type: 'lockout', ip, untilMs });
  }
}
