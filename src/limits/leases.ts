// Leased tokens: one store call may take a small batch of tokens for a busy bucket, which this
// replica then spends locally until they run out or expire. Never more tokens than the store
// granted; unspent ones are dropped LEASE_TTL_MS after the grant, so a lease never outlives a short
// burst (and with `onError: deny` that is how long a replica may go on admitting requests from a
// lease once the store stops answering).
import type { LimitState } from '../core/context.js';

const LEASE_TTL_MS = 100;
/** More distinct lease keys than this and all are dropped (they refill from the store). */
const MAX_LEASES = 50_000;

interface Lease {
  tokens: number;
  expires: number;
  /** Shared by every request the lease admits: headers only, nothing to release. */
  readonly state: LimitState;
}

export class Leases {
  readonly #byKey = new Map<string, Lease>();

  /** Takes one token of `key`'s lease: its shared limit state, or undefined when it has none left. */
  spend(key: string): LimitState | undefined {
    const lease = this.#byKey.get(key);
    if (lease === undefined || lease.tokens <= 0 || lease.expires <= performance.now()) return undefined;
    lease.tokens--;
    return lease.state;
  }

  /** Keeps `tokens` the store granted beyond this request's cost for the next requests of `key`. */
  grant(key: string, tokens: number, headers: Readonly<Record<string, string>>): void {
    if (tokens <= 0) return;
    this.#byKey.set(key, { tokens, expires: performance.now() + LEASE_TTL_MS, state: { headers, release: undefined, degraded: false } });
    if (this.#byKey.size > MAX_LEASES) this.#byKey.clear();
  }
}
