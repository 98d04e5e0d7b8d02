// One contract, every limits store: the memory store and the Redis store must decide alike.
import { describe, expect, it } from 'vitest';
import type { BucketCheck, LimitCheck, LimitStore } from '../../src/limits/store.js';

export interface StoreFixture {
  store: LimitStore;
  /** A fresh key prefix (with hash tag) per test. */
  tag(): string;
  /** Moves the store's notion of "now" (memory: injected clock; Redis: sleeps). */
  advance(ms: number): Promise<void>;
  /** Makes the quota at `key` look as if it was counted in an earlier window. */
  ageQuota(key: string): Promise<void>;
}

const bucket = (key: string, perSecond: number, burst: number, extra: Partial<BucketCheck> = {}): BucketCheck => ({
  key,
  ratePerMs: perSecond / 1000,
  burst,
  cost: 1,
  lease: 1,
  policy: 'p',
  ...extra,
});
const only = (b: BucketCheck): LimitCheck => ({ buckets: [b], quota: undefined, concurrency: undefined });

export function storeContract(name: string, make: () => Promise<StoreFixture>): void {
  describe(`${name} store contract`, () => {
    it('warms up, then answers checks', async () => {
      const f = await make();
      expect(await f.store.warmUp(3000)).toBe(true);
      expect((await f.store.check(only(bucket(`${f.tag()}:warm`, 10, 1)))).allowed).toBe(true);
    });

    it('lockout: the N-th failure within the window locks the key for the duration', async () => {
      const f = await make();
      const key = `${f.tag()}:lockout`;
      expect(await f.store.lockedOut(key)).toBe(0);
      expect(await f.store.recordFailure(key, 3, 60_000, 300)).toBe(0);
      expect(await f.store.recordFailure(key, 3, 60_000, 300)).toBe(0);
      expect(await f.store.lockedOut(key)).toBe(0);
      const ms = await f.store.recordFailure(key, 3, 60_000, 300);
      expect(ms).toBeGreaterThan(250);
      expect(ms).toBeLessThanOrEqual(300);
      const left = await f.store.lockedOut(key);
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(300);
      // failures while locked do not extend it
      expect(await f.store.recordFailure(key, 3, 60_000, 300)).toBeLessThanOrEqual(300);
      await f.advance(350);
      expect(await f.store.lockedOut(key)).toBe(0);
      expect(await f.store.recordFailure(key, 3, 60_000, 300)).toBe(0); // counting starts over
    });

    it('lockout: failures older than the window do not count, and keys are independent', async () => {
      const f = await make();
      const tag = f.tag();
      const a = `${tag}:a:lockout`;
      const b = `${tag}:b:lockout`;
      expect(await f.store.recordFailure(a, 2, 150, 10_000)).toBe(0);
      await f.advance(200);
      expect(await f.store.recordFailure(a, 2, 150, 10_000)).toBe(0); // the first one expired with its window
      expect(await f.store.recordFailure(b, 2, 150, 10_000)).toBe(0);
      expect(await f.store.recordFailure(a, 2, 150, 10_000)).toBeGreaterThan(9_000);
      expect(await f.store.lockedOut(b)).toBe(0);
    });

    it('lockout: parallel failures lock exactly once', async () => {
      const f = await make();
      const key = `${f.tag()}:lockout`;
      const rs = await Promise.all(Array.from({ length: 20 }, () => f.store.recordFailure(key, 5, 60_000, 60_000)));
      expect(rs.filter((r) => r === 60_000).length).toBeGreaterThanOrEqual(1);
      expect(rs.filter((r) => r === 0)).toHaveLength(4);
    });

    it('admits the burst and then refuses with RATE_LIMITED and a Retry-After', async () => {
      const f = await make();
      const b = bucket(`${f.tag()}:b`, 1, 3);
      const results = [];
      for (let i = 0; i < 4; i++) results.push(await f.store.check(only(b)));
      expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
      expect(results[3]!.code).toBe('RATE_LIMITED');
      expect(results[3]!.retryAfterS).toBeGreaterThanOrEqual(1);
      expect(results[2]!.remaining).toBe(0);
    });

    it('refills at the configured rate', async () => {
      const f = await make();
      const b = bucket(`${f.tag()}:b`, 20, 1);
      expect((await f.store.check(only(b))).allowed).toBe(true);
      expect((await f.store.check(only(b))).allowed).toBe(false);
      await f.advance(120);
      expect((await f.store.check(only(b))).allowed).toBe(true);
    });

    it('admits exactly 50 of 500 parallel requests against a bucket of 50', async () => {
      const f = await make();
      const b = bucket(`${f.tag()}:b`, 0.001, 50);
      const rs = await Promise.all(Array.from({ length: 500 }, () => f.store.check(only(b))));
      expect(rs.filter((r) => r.allowed)).toHaveLength(50);
    });

    it('grants a lease of up to the requested tokens and never more than the bucket holds', async () => {
      const f = await make();
      const b = bucket(`${f.tag()}:b`, 0.001, 25, { lease: 10 });
      const granted: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await f.store.check(only(b));
        granted.push(r.allowed ? r.granted[0]! : 0);
      }
      expect(granted).toEqual([10, 10, 5, 0]);
    });

    it('counts a quota, refuses past it with QUOTA_EXCEEDED, and does not count refused requests', async () => {
      const f = await make();
      const tag = f.tag();
      const check: LimitCheck = { buckets: [], quota: { key: `${tag}:q`, limit: 2, window: 'day' }, concurrency: undefined };
      expect((await f.store.check(check)).allowed).toBe(true);
      expect((await f.store.check(check)).allowed).toBe(true);
      const denied = await f.store.check(check);
      expect(denied.code).toBe('QUOTA_EXCEEDED');
      expect(denied.retryAfterS).toBeGreaterThan(0);
      expect(denied.retryAfterS).toBeLessThanOrEqual(86_400);
      const usage = await f.store.usage({ tenant: 't', quota: check.quota, buckets: [], concurrency: undefined });
      expect(usage.quota).toMatchObject({ used: 2, remaining: 0 });
    });

    it('does not consume quota when a bucket refuses the request', async () => {
      const f = await make();
      const tag = f.tag();
      const check: LimitCheck = { buckets: [bucket(`${tag}:b`, 0.001, 1)], quota: { key: `${tag}:q`, limit: 10, window: 'day' }, concurrency: undefined };
      await f.store.check(check);
      expect((await f.store.check(check)).code).toBe('RATE_LIMITED');
      const usage = await f.store.usage({ tenant: 't', quota: check.quota, buckets: [], concurrency: undefined });
      expect(usage.quota!.used).toBe(1);
    });

    it('starts a new quota window when the old one is over', async () => {
      const f = await make();
      const key = `${f.tag()}:q`;
      const check: LimitCheck = { buckets: [], quota: { key, limit: 1, window: 'minute' }, concurrency: undefined };
      expect((await f.store.check(check)).allowed).toBe(true);
      expect((await f.store.check(check)).allowed).toBe(false);
      await f.ageQuota(key);
      expect((await f.store.check(check)).allowed).toBe(true);
    });

    it('admits while the token spend is under its quota, then refuses with TOKEN_QUOTA_EXCEEDED until the window resets', async () => {
      const f = await make();
      const tag = f.tag();
      const key = `${tag}:tokens`;
      const daysKey = `${tag}:tokens:days`;
      const check: LimitCheck = { buckets: [], quota: undefined, concurrency: undefined, tokens: { key, limit: 100, window: 'minute' } };
      expect((await f.store.check(check)).allowed).toBe(true);
      // The check only reads: admitting twice spends nothing.
      expect((await f.store.check(check)).allowed).toBe(true);
      expect(await f.store.charge({ key, daysKey, window: 'minute', tokens: 60 })).toBe(60);
      expect((await f.store.check(check)).allowed).toBe(true);
      expect(await f.store.charge({ key, daysKey, window: 'minute', tokens: 45 })).toBe(105);
      const denied = await f.store.check(check);
      expect(denied).toMatchObject({ allowed: false, code: 'TOKEN_QUOTA_EXCEEDED' });
      expect(denied.retryAfterS).toBeGreaterThan(0);
      expect(denied.retryAfterS).toBeLessThanOrEqual(60);
      await f.ageQuota(key);
      expect((await f.store.check(check)).allowed).toBe(true);
      expect(await f.store.charge({ key, daysKey, window: 'minute', tokens: 1 })).toBe(1);
    });

    it('a token refusal takes no request quota, bucket token or concurrency slot', async () => {
      const f = await make();
      const tag = f.tag();
      const key = `${tag}:tokens`;
      await f.store.charge({ key, daysKey: `${tag}:tokens:days`, window: 'day', tokens: 10 });
      const check: LimitCheck = {
        buckets: [bucket(`${tag}:b`, 0.001, 5)],
        quota: { key: `${tag}:q`, limit: 10, window: 'day' },
        concurrency: { key: `${tag}:c`, limit: 1, ttlMs: 60_000, slot: 's' },
        tokens: { key, limit: 10, window: 'day' },
      };
      expect((await f.store.check(check)).code).toBe('TOKEN_QUOTA_EXCEEDED');
      const u = await f.store.usage({ tenant: 't', quota: check.quota, buckets: [{ key: `${tag}:b`, burst: 5, ratePerMs: 0.000001 }], concurrency: { key: `${tag}:c`, limit: 1 } });
      expect(u.quota!.used).toBe(0);
      expect(u.buckets[0]!.tokens).toBe(5);
      expect(u.concurrency!.inUse).toBe(0);
    });

    it('reports the token spend of the window and per UTC day', async () => {
      const f = await make();
      const tag = f.tag();
      const key = `${tag}:tokens`;
      const daysKey = `${tag}:tokens:days`;
      await f.store.charge({ key, daysKey, window: 'month', tokens: 7 });
      await f.store.charge({ key, daysKey, window: 'month', tokens: 5 });
      const u = await f.store.usage({ tenant: 't', quota: undefined, buckets: [], concurrency: undefined, tokens: { key, daysKey, window: 'month', limit: 100 } });
      expect(u.tokens).toEqual({ window: 'month', used: 12, limit: 100, remaining: 88 });
      expect(u.tokensByDay).toHaveLength(1);
      expect(u.tokensByDay![0]!.tokens).toBe(12);
      expect(u.tokensByDay![0]!.day).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      const none = await f.store.usage({
        tenant: 't',
        quota: undefined,
        buckets: [],
        concurrency: undefined,
        tokens: { key: `${tag}:other`, daysKey: `${tag}:other:days`, window: 'month', limit: undefined },
      });
      expect(none.tokens).toEqual({ window: 'month', used: 0, limit: undefined, remaining: undefined });
      expect(none.tokensByDay).toEqual([]);
    });

    it("counts an API key's quota with the tier's, and a refusal by either counts neither", async () => {
      const f = await make();
      const tag = f.tag();
      const quota = { key: `${tag}:q`, limit: 3, window: 'day' as const };
      const keyQuota = { key: `${tag}:key:k1:quota`, limit: 2, window: 'day' as const };
      const check: LimitCheck = { buckets: [], quota, keyQuota, concurrency: undefined };
      expect((await f.store.check(check)).allowed).toBe(true);
      expect((await f.store.check(check)).allowed).toBe(true);
      expect((await f.store.check(check)).code).toBe('QUOTA_EXCEEDED'); // the key's
      const other: LimitCheck = { buckets: [], quota, keyQuota: { ...keyQuota, key: `${tag}:key:k2:quota` }, concurrency: undefined };
      expect((await f.store.check(other)).allowed).toBe(true);
      expect((await f.store.check(other)).code).toBe('QUOTA_EXCEEDED'); // the tier's: 3 in all
      const u = await f.store.usage({ tenant: 't', quota, buckets: [], concurrency: undefined });
      expect(u.quota!.used).toBe(3);
      const k2 = await f.store.usage({ tenant: 't', quota: other.keyQuota, buckets: [], concurrency: undefined });
      expect(k2.quota!.used).toBe(1);
    });

    it('holds concurrency slots until released, and expires a slot whose holder died', async () => {
      const f = await make();
      const key = `${f.tag()}:c`;
      const conc = (slot: string, ttlMs = 60_000): LimitCheck => ({ buckets: [], quota: undefined, concurrency: { key, limit: 2, ttlMs, slot } });
      expect((await f.store.check(conc('a'))).allowed).toBe(true);
      expect((await f.store.check(conc('b', 150))).allowed).toBe(true);
      const third = await f.store.check(conc('c'));
      expect(third.code).toBe('CONCURRENCY_EXCEEDED');
      f.store.release(key, 'a');
      await new Promise((r) => setTimeout(r, 30));
      expect((await f.store.check(conc('d'))).allowed).toBe(true);
      await f.advance(200); // slot b's holder never released it
      expect((await f.store.check(conc('e'))).allowed).toBe(true);
    });

    it('keeps a slot that its replica renews past its TTL, and expires the slots nobody renews', async () => {
      const f = await make();
      const key = `${f.tag()}:c`;
      const conc = (slot: string): LimitCheck => ({ buckets: [], quota: undefined, concurrency: { key, limit: 2, ttlMs: 300, slot } });
      expect((await f.store.check(conc('kept'))).allowed).toBe(true);
      expect((await f.store.check(conc('orphan'))).allowed).toBe(true);
      for (let i = 0; i < 4; i++) {
        await f.advance(150);
        await f.store.refreshSlots(key, ['kept'], [], 300);
      }
      // 600 ms later: the orphan expired, the renewed slot did not.
      expect((await f.store.check(conc('next'))).allowed).toBe(true);
      expect((await f.store.check(conc('one-too-many'))).code).toBe('CONCURRENCY_EXCEEDED');
      const u = await f.store.usage({ tenant: 't', quota: undefined, buckets: [], concurrency: { key, limit: 2 } });
      expect(u.concurrency!.inUse).toBe(2);
    });

    it('a renewal puts back a held slot that expired, drops the released ones, and a release of an unknown slot changes nothing', async () => {
      const f = await make();
      const key = `${f.tag()}:c`;
      const conc = (slot: string): LimitCheck => ({ buckets: [], quota: undefined, concurrency: { key, limit: 1, ttlMs: 100, slot } });
      const inUse = async () => (await f.store.usage({ tenant: 't', quota: undefined, buckets: [], concurrency: { key, limit: 1 } })).concurrency!.inUse;
      expect((await f.store.check(conc('a'))).allowed).toBe(true);
      await f.advance(150); // expired while Redis could not be reached, say; the request is still in flight
      await f.store.refreshSlots(key, ['a'], [], 60_000);
      expect(await inUse()).toBe(1);
      expect((await f.store.check(conc('b'))).code).toBe('CONCURRENCY_EXCEEDED');
      await f.store.release(key, 'never-taken');
      expect(await inUse()).toBe(1);
      await f.store.refreshSlots(key, [], ['a'], 60_000);
      expect(await inUse()).toBe(0);
      expect((await f.store.check(conc('c'))).allowed).toBe(true);
    });

    it('evaluates all limits of a call together: a full bucket keeps the slot free', async () => {
      const f = await make();
      const tag = f.tag();
      const check: LimitCheck = { buckets: [bucket(`${tag}:b`, 0.001, 1)], quota: undefined, concurrency: { key: `${tag}:c`, limit: 5, ttlMs: 60_000, slot: 's1' } };
      await f.store.check(check);
      await f.store.check({ ...check, concurrency: { ...check.concurrency!, slot: 's2' } });
      const u = await f.store.usage({ tenant: 't', quota: undefined, buckets: [], concurrency: { key: `${tag}:c`, limit: 5 } });
      expect(u.concurrency!.inUse).toBe(1);
    });
  });
}
