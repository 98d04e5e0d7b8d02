import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStore } from '../../src/limits/memory-store.js';
import { RedisStore } from '../../src/limits/redis-store.js';
import { StoreTimeoutError } from '../../src/limits/store.js';
import { PrivateRedis, redisUrl } from '../helpers/redis.js';
import { storeContract } from './store.contract.js';

let clock = 1_700_000_000_000;
const memory = new MemoryStore({ now: () => clock });
let n = 0;
storeContract('memory', async () => ({
  store: memory,
  tag: () => `m${++n}:{t:x${n}}`,
  advance: async (ms) => void (clock += ms),
  ageQuota: async () => void (clock += 60_000),
}));

const redis = new RedisStore({ url: redisUrl(), timeoutMs: 500 });
const admin = new Redis(redisUrl());
const run = Date.now().toString(36);
storeContract('redis', async () => ({
  store: redis,
  tag: () => `test:${run}:{t:r${++n}}`,
  advance: (ms) => new Promise((r) => setTimeout(r, ms)),
  ageQuota: async (key) => void (await admin.hset(key, 'w', 0)),
}));

afterAll(async () => {
  await redis.close();
  admin.disconnect();
});

const commandStats = async (client: Redis): Promise<Record<string, number>> => {
  const info = await client.info('commandstats');
  const out: Record<string, number> = {};
  for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) out[m[1]!] = Number(m[2]);
  return out;
};

describe('redis store specifics', () => {
  it('makes exactly one EVALSHA round trip per check and no other command', async () => {
    // A private server: other suites share the common one, and their commands would count here.
    const server = await PrivateRedis.start();
    const own = new RedisStore({ url: server.url, timeoutMs: 500 });
    const probe = new Redis(server.url);
    try {
      const tag = `test:${run}:{t:rt}`;
      const check = {
        buckets: [{ key: `${tag}:b`, ratePerMs: 1, burst: 1000, cost: 1, lease: 1, policy: 'p' }],
        quota: { key: `${tag}:q`, limit: 1000, window: 'day' as const },
        concurrency: undefined,
      };
      await own.check(check); // loads the script
      const before = await commandStats(probe);
      for (let i = 0; i < 20; i++) await own.check(check);
      const after = await commandStats(probe);
      const delta = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
      expect(delta('evalsha')).toBe(20);
      // The probe's own INFO is the only other top-level command.
      const others = Object.keys(after).filter((k) => !['evalsha', 'info', 'hmget', 'hset', 'pexpire', 'pexpireat', 'hincrby', 'time'].includes(k) && delta(k) > 0);
      expect(others).toEqual([]);
    } finally {
      probe.disconnect();
      await own.close();
      await server.stop();
    }
  });

  it('puts a TTL on every key and keeps one tenant under one hash tag', async () => {
    const tag = `test:${run}:{t:ttl}`;
    await redis.check({
      buckets: [{ key: `${tag}:b`, ratePerMs: 1, burst: 10, cost: 1, lease: 1, policy: 'p' }],
      quota: { key: `${tag}:q`, limit: 10, window: 'month' },
      concurrency: { key: `${tag}:c`, limit: 2, ttlMs: 1000, slot: 'x' },
    });
    for (const k of [`${tag}:b`, `${tag}:q`, `${tag}:c`]) expect(await admin.pttl(k)).toBeGreaterThan(0);
    const slots = await Promise.all([`${tag}:b`, `${tag}:q`, `${tag}:c`].map((k) => admin.call('CLUSTER', 'KEYSLOT', k).catch(() => undefined)));
    if (slots[0] !== undefined) expect(new Set(slots).size).toBe(1);
  });

  it('puts a TTL on the lockout key', async () => {
    const key = `test:${run}:{ip:203.0.113.9}:lockout`;
    await redis.recordFailure(key, 5, 60_000, 300_000);
    const ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(60_000);
    for (let i = 0; i < 4; i++) await redis.recordFailure(key, 5, 60_000, 300_000);
    expect(await admin.pttl(key)).toBeGreaterThan(60_000);
  });

  it('warms up before the first check: connected, scripts loaded, so the first check is one EVALSHA', async () => {
    const server = await PrivateRedis.start();
    const probe = new Redis(server.url);
    const store = new RedisStore({ url: server.url, timeoutMs: 500 });
    try {
      expect(await store.warmUp(3000)).toBe(true);
      const before = await commandStats(probe);
      await store.check({ buckets: [{ key: 'w:{t:a}:b', ratePerMs: 1, burst: 10, cost: 1, lease: 1, policy: 'p' }], quota: undefined, concurrency: undefined });
      const after = await commandStats(probe);
      expect((after.evalsha ?? 0) - (before.evalsha ?? 0)).toBe(1);
      expect((after.eval ?? 0) - (before.eval ?? 0)).toBe(0); // no NOSCRIPT fallback
    } finally {
      probe.disconnect();
      await store.close();
      await server.stop();
    }
  });

  it('says when it cannot warm up because Redis is not there, within the wait', async () => {
    const server = await PrivateRedis.start();
    await server.kill();
    const store = new RedisStore({ url: server.url, timeoutMs: 50 });
    try {
      const t0 = Date.now();
      expect(await store.warmUp(300)).toBe(false);
      expect(Date.now() - t0).toBeLessThan(1500);
    } finally {
      await store.close();
      await server.stop();
    }
  });

  it('a check Redis runs after the proxy gave up on it changes nothing: no token, no quota, no slot', async () => {
    const server = await PrivateRedis.start();
    const store = new RedisStore({ url: server.url, timeoutMs: 50 });
    const admin = new Redis(server.url);
    const tag = `test:${run}:{t:late}`;
    const check = {
      buckets: [{ key: `${tag}:b`, ratePerMs: 0.001, burst: 5, cost: 1, lease: 1, policy: 'p' }],
      quota: { key: `${tag}:q`, limit: 5, window: 'day' as const },
      concurrency: { key: `${tag}:c`, limit: 1, ttlMs: 60_000, slot: 'late' },
    };
    try {
      expect(await store.warmUp(3000)).toBe(true);
      // Longer than the check's deadline (hardWaitMs(50) = 500 ms): the script runs when it is over.
      await admin.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const t0 = Date.now();
      await expect(store.check(check)).rejects.toThrow(StoreTimeoutError);
      expect(Date.now() - t0).toBeLessThan(1000); // a silent Redis is given up on after the timeout, not the deadline
      await new Promise((r) => setTimeout(r, 1800)); // the pause ends; Redis runs the queued check
      const u = await store.usage({ tenant: 't', quota: check.quota, buckets: [{ key: `${tag}:b`, burst: 5, ratePerMs: 0.001 }], concurrency: { key: `${tag}:c`, limit: 1 } });
      expect(u.concurrency!.inUse).toBe(0);
      expect(u.quota!.used).toBe(0);
      expect(u.buckets[0]!.tokens).toBe(5);
      expect((await store.check({ ...check, concurrency: { ...check.concurrency, slot: 'next' } })).allowed).toBe(true);
    } finally {
      admin.disconnect();
      await store.close();
      await server.stop();
    }
  });

  it('a reply that waited in this process while its event loop was busy is used, not taken for a silent Redis', async () => {
    const store = new RedisStore({ url: redisUrl(), timeoutMs: 50 });
    try {
      expect(await store.warmUp(3000)).toBe(true);
      const tag = `test:${run}:{t:busy}`;
      const pending = Array.from({ length: 100 }, (_, i) =>
        store.check({
          buckets: [{ key: `${tag}:b`, ratePerMs: 0.001, burst: 50, cost: 1, lease: 1, policy: 'p' }],
          quota: undefined,
          concurrency: i % 2 ? { key: `${tag}:c`, limit: 1000, ttlMs: 60_000, slot: `s${i}` } : undefined,
        }),
      );
      // Once the checks are written, this process is busy for six timeouts (a burst of requests to
      // parse, a long GC): Redis answers within a millisecond, and the answers wait in the socket.
      await new Promise<void>((resolve) =>
        setImmediate(() => {
          const until = performance.now() + 300;
          while (performance.now() < until);
          resolve();
        }),
      );
      const results = await Promise.allSettled(pending);
      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      expect(results.filter((r) => r.status === 'fulfilled' && r.value.allowed)).toHaveLength(50);
    } finally {
      await store.close();
    }
  });

  it('recovers after SCRIPT FLUSH', async () => {
    const tag = `test:${run}:{t:flush}`;
    const check = { buckets: [{ key: `${tag}:b`, ratePerMs: 1, burst: 10, cost: 1, lease: 1, policy: 'p' }], quota: undefined, concurrency: undefined };
    await redis.check(check);
    await admin.script('FLUSH');
    expect((await redis.check(check)).allowed).toBe(true);
  });

  it('fails fast while Redis is down and works again once it is back', async () => {
    const server = await PrivateRedis.start();
    const store = new RedisStore({ url: server.url, timeoutMs: 50 });
    const check = { buckets: [{ key: 'k:{t:a}:b', ratePerMs: 1, burst: 10, cost: 1, lease: 1, policy: 'p' }], quota: undefined, concurrency: undefined };
    try {
      expect((await store.check(check)).allowed).toBe(true);
      await server.kill();
      const t0 = Date.now();
      // A refused connection can make ioredis give up (MaxRetriesPerRequestError) before the
      // silence timer fires (StoreTimeoutError): either is a fast fault, which is what counts.
      await expect(store.check(check)).rejects.toThrow();
      expect(Date.now() - t0).toBeLessThan(1000);
      await server.start();
      const until = Date.now() + 5000;
      let ok = false;
      while (!ok && Date.now() < until) {
        ok = await store.check(check).then(
          (r) => r.allowed,
          () => false,
        );
        if (!ok) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ok).toBe(true);
    } finally {
      await store.close();
      await server.stop();
    }
  });
});
