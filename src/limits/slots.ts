// Concurrency slots live exactly as long as their requests. A slot's entry in the store expires
// `ttlMs` after it was last renewed, and this replica renews every slot of its in-flight requests
// in one call per concurrency key every ttlMs / 3: a WebSocket or a long download keeps its slot
// however long it lasts, and the slots of a replica that died expire within ttlMs.
//
// It also makes sure that no slot outlives a request that does not own it: a slot that a failed or
// timed-out check may have taken, or that a request which ended before its check answered did take,
// is released at once; a release that fails is sent again with the next renewals.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { storeErrorsTotal, storeSlotReleasesTotal, storeSlotsHeld } from '../observability/metrics.js';
import type { LimitStore } from './store.js';

interface KeySlots {
  ttlMs: number;
  /** Slots of this replica's in-flight requests. */
  readonly held: Set<string>;
  /** Slots to remove whose release failed, with when it was first tried (performance.now()). */
  readonly drop: Map<string, number>;
  /** A renewal of this key is in flight: the next beat skips it rather than piling calls up. */
  busy: boolean;
}

export type ReleaseReason = 'abandoned' | 'ended';

export class SlotKeeper {
  /** Names this replica's slots apart from every other replica's. */
  readonly #instance = randomBytes(4).toString('hex');
  #counter = 0;
  readonly #store: LimitStore;
  readonly #logger: Pick<Logger, 'warn'> | undefined;
  readonly #keys = new Map<string, KeySlots>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(store: LimitStore, logger?: Pick<Logger, 'warn'>) {
    this.#store = store;
    this.#logger = logger;
  }

  /** A new slot name for the next check that takes one. */
  next(): string {
    this.#counter = (this.#counter + 1) % 1e12;
    return `${this.#instance}:${this.#counter}`;
  }

  /** A check took `slot` for a request now in flight: renew it until release. */
  hold(key: string, slot: string, ttlMs: number): void {
    const k = this.#entry(key, ttlMs);
    k.held.add(slot);
    storeSlotsHeld.inc();
    this.#schedule(ttlMs);
  }

  /** The request that held `slot` ended (finish, abort, error). */
  release(key: string, slot: string): void {
    const k = this.#keys.get(key);
    if (k?.held.delete(slot)) storeSlotsHeld.dec();
    this.#remove(key, slot, k?.ttlMs);
  }

  /**
   * `slot` is not held by any request, yet a check may have taken it: the check failed or timed out
   * (Redis may still have run it before its deadline), or its request ended before it answered.
   */
  abandon(key: string, slot: string, ttlMs: number, reason: ReleaseReason): void {
    storeSlotReleasesTotal.labels(reason).inc();
    this.#remove(key, slot, ttlMs);
  }

  #remove(key: string, slot: string, ttlMs: number | undefined): void {
    // A release goes out on the same connection after the check that took the slot, so Redis runs
    // it after that check whenever the check runs at all.
    let sent: Promise<void>;
    try {
      sent = this.#store.release(key, slot);
    } catch (err) {
      sent = Promise.reject(err);
    }
    sent.catch(() => {
      storeErrorsTotal.labels('release').inc();
      const k = this.#entry(key, ttlMs ?? 60_000);
      if (!k.drop.has(slot)) k.drop.set(slot, performance.now());
      this.#schedule(k.ttlMs);
    });
  }

  #entry(key: string, ttlMs: number): KeySlots {
    let k = this.#keys.get(key);
    if (k === undefined) this.#keys.set(key, (k = { ttlMs, held: new Set(), drop: new Map(), busy: false }));
    else k.ttlMs = ttlMs; // a reloaded policy's TTL applies from the next renewal
    return k;
  }

  #schedule(ttlMs: number): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(this.#beat, Math.max(10, Math.floor(ttlMs / 3)));
    this.#timer.unref();
  }

  readonly #beat = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    let next = Infinity;
    for (const [key, k] of this.#keys) {
      // A slot unrenewed for a TTL has expired in the store by itself: nothing left to release.
      for (const [slot, since] of k.drop) if (now - since > k.ttlMs) k.drop.delete(slot);
      if (k.held.size === 0 && k.drop.size === 0) {
        if (!k.busy) this.#keys.delete(key);
        continue;
      }
      next = Math.min(next, k.ttlMs);
      if (k.busy) continue;
      const hold = [...k.held];
      const drop = [...k.drop.keys()];
      k.busy = true;
      let call: Promise<void>;
      try {
        call = this.#store.refreshSlots(key, hold, drop, k.ttlMs);
      } catch (err) {
        call = Promise.reject(err);
      }
      call.then(
        () => {
          k.busy = false;
          for (const slot of drop) k.drop.delete(slot);
          if (drop.length > 0) storeSlotReleasesTotal.labels('retried').inc(drop.length);
          this.#failing = false;
        },
        (err: unknown) => {
          k.busy = false;
          storeErrorsTotal.labels('slots').inc();
          if (!this.#failing) {
            this.#failing = true;
            this.#logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'limits store: renewing concurrency slots failed; retrying at the next renewal');
          }
        },
      );
    }
    if (next !== Infinity) this.#schedule(next);
  };
}
