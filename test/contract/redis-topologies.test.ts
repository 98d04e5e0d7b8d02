// Everything Portcullis keeps in Redis, against the deployments its URLs name besides a single
// server: a three-master Redis Cluster (every key of a call in one slot, tenants spread over the
// nodes) and a Sentinel-watched master with a replica (the store follows a failover). The limits
// store, the dynamic key store and the redisStream audit sink meet the same contracts as on one server.

import { Cluster, Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisStreamSink } from '../../src/audit/sinks/redis-stream.js';
import { RedisKeyStore } from '../../src/authn/key-store.js';
import { RedisStore } from '../../src/limits/redis-store.js';
import type { LimitCheck } from '../../src/limits/store.js';
import { freePort } from '../helpers/redis.js';
import { RedisCluster, RedisSentinel } from '../helpers/redis-topologies.js';
import { keyStoreContract } from './key-store.contract.js';
import { sinkContract } from './sink.contract.js';
import { storeContract } from './store.contract.js';

const run = Date.now().toString(36);
let n = 0;

const check = (tag: string): LimitCheck => ({
  buckets: [{ key: `${tag}:b`, ratePerMs: 1, burst: 100, cost: 1, lease: 1, policy: 'p' }],
  quota: { key: `${tag}:q`, limit: 100, window: 'day' },
  concurrency: { key: `${tag}:c`, limit: 5, ttlMs: 5000, slot: 's' },
});

// One deployment per topology for the whole file, started by the first test that needs it.
let cluster: Promise<{ deployment: RedisCluster; store: RedisStore; admin: Cluster }> | undefined;
const clusterOnce = () =>
  (cluster ??= RedisCluster.start().then((deployment) => {
    const seeds = deployment.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
    return { deployment, store: new RedisStore({ url: deployment.url, timeoutMs: 500 }), admin: new Cluster(seeds) };
  }));

let sentinel: Promise<{ deployment: RedisSentinel; store: RedisStore; admin: Redis }> | undefined;
const sentinelOnce = () =>
  (sentinel ??= RedisSentinel.start().then((deployment) => ({
    deployment,
    store: new RedisStore({ url: deployment.url, timeoutMs: 500 }),
    admin: new Redis({ sentinels: [{ host: '127.0.0.1', port: deployment.port }], name: 'mymaster' }),
  })));

let clusterKeys: { store: RedisKeyStore; replica: RedisKeyStore } | undefined;

afterAll(async () => {
  if (clusterKeys !== undefined) await Promise.all([clusterKeys.store.close(), clusterKeys.replica.close()]);
  for (const d of [cluster, sentinel]) {
    if (d === undefined) continue;
    const { deployment, store, admin } = await d;
    await store.close();
    admin.disconnect();
    await deployment.stop();
  }
});

/** The store contract's fixture on one deployment; `letter` keeps its tenants apart from the other's. */
const limitsFixture = (letter: string, once: () => Promise<{ store: RedisStore; admin: Redis | Cluster }>) => async () => {
  const { store, admin } = await once();
  return {
    store,
    tag: () => `test:${run}:{t:${letter}${++n}}`,
    advance: (ms: number) => new Promise<void>((r) => setTimeout(r, ms)),
    ageQuota: async (key: string) => void (await admin.hset(key, 'w', 0)),
  };
};

storeContract('redis cluster', limitsFixture('c', clusterOnce));
storeContract('redis sentinel', limitsFixture('s', sentinelOnce));

keyStoreContract('redis cluster', async () => {
  const { deployment } = await clusterOnce();
  return (clusterKeys ??= { store: new RedisKeyStore(deployment.url), replica: new RedisKeyStore(deployment.url) });
});

let streams = 0;
sinkContract('redisStream on a cluster', {
  async make() {
    const { deployment, admin } = await clusterOnce();
    const key = `audit-cluster-${process.pid}-${streams++}`;
    const sink = new RedisStreamSink({ url: deployment.url, key, maxLen: 100_000 });
    return {
      sink,
      stored: async () => (await admin.xrange(key, '-', '+')).map(([, fields]) => fields[fields.indexOf('event') + 1]!),
      cleanup: async () => sink.close(),
    };
  },
  async unreachable() {
    return new RedisStreamSink({ url: `redis+cluster://127.0.0.1:${await freePort()}`, key: 'x' });
  },
});

describe('redis cluster specifics', () => {
  it('keeps the bucket, quota and concurrency keys of one tenant in one slot', async () => {
    const { store, admin } = await clusterOnce();
    const tag = `portcullis:{t:acme-${run}}`;
    expect((await store.check(check(tag))).allowed).toBe(true);
    const slots = await Promise.all(['b', 'q', 'c'].map((k) => admin.cluster('KEYSLOT', `${tag}:${k}`)));
    expect(new Set(slots).size).toBe(1);
    for (const k of ['b', 'q', 'c']) expect(await admin.exists(`${tag}:${k}`)).toBe(1);
  });

  it('spreads tenants over every node, and each node answers the checks of its tenants', async () => {
    const { deployment, store } = await clusterOnce();
    const tenants = Array.from({ length: 30 }, (_, i) => `portcullis:{t:spread-${run}-${i}}`);
    const results = await Promise.all(tenants.map((t) => store.check(check(t))));
    expect(results.every((r) => r.allowed)).toBe(true);
    // Each node holds keys of some of these tenants: the calls were routed by slot, not sent to one node.
    for (const node of deployment.nodes) {
      const direct = new Redis(node.url);
      try {
        const keys = await direct.keys(`portcullis:{t:spread-${run}-*}:q`);
        expect(keys.length).toBeGreaterThan(0);
      } finally {
        direct.disconnect();
      }
    }
  });

  it('reports a tenant’s usage from the node that holds it', async () => {
    const { store } = await clusterOnce();
    const tag = `portcullis:{t:usage-${run}}`;
    for (let i = 0; i < 3; i++) await store.check(check(tag));
    const usage = await store.usage({
      tenant: 'usage',
      quota: { key: `${tag}:q`, limit: 100, window: 'day' },
      buckets: [{ key: `${tag}:b`, burst: 100, ratePerMs: 0.000001 }],
      concurrency: { key: `${tag}:c`, limit: 5 },
    });
    expect(usage.quota?.used).toBe(3);
    expect(usage.concurrency?.inUse).toBe(1); // the same slot name, held once
  });
});

describe('redis cluster faults', () => {
  it('fails fast when the node holding a tenant is down, and other tenants keep working', async () => {
    const deployment = await RedisCluster.start();
    const store = new RedisStore({ url: deployment.url, timeoutMs: 200 });
    const probe = new Redis(deployment.nodes[0]!.url);
    try {
      expect(await store.warmUp(5000)).toBe(true);
      // Two tenants, one on the node that goes down and one elsewhere.
      const tags = Array.from({ length: 40 }, (_, i) => `portcullis:{t:fault-${run}-${i}}`);
      const owner = async (tag: string) => {
        const slot = Number(await probe.cluster('KEYSLOT', `${tag}:b`));
        const ranges = await probe.cluster('SLOTS');
        return ranges.find(([from, to]) => slot >= from && slot <= to)![2]![1];
      };
      const doomed = deployment.nodes[1]!;
      let down: string | undefined;
      let up: string | undefined;
      for (const t of tags) {
        const port = await owner(t);
        if (port === doomed.port) down ??= t;
        else up ??= t;
      }
      expect((await store.check(check(down!))).allowed).toBe(true);
      await doomed.kill();
      const t0 = Date.now();
      await expect(store.check(check(down!))).rejects.toThrow();
      expect(Date.now() - t0).toBeLessThan(1500);
      expect((await store.check(check(up!))).allowed).toBe(true);
    } finally {
      probe.disconnect();
      await store.close();
      await deployment.stop();
    }
  });
});

describe('redis sentinel specifics', () => {
  it('follows a failover: once the master dies, checks succeed again on the promoted replica', async () => {
    const deployment = await RedisSentinel.start();
    const store = new RedisStore({ url: deployment.url, timeoutMs: 300 });
    try {
      const tag = `portcullis:{t:failover-${run}}`;
      expect(await store.warmUp(5000)).toBe(true);
      expect((await store.check(check(tag))).allowed).toBe(true);
      expect(await deployment.masterPort()).toBe(deployment.master.port);

      await deployment.master.kill();
      const deadline = Date.now() + 25_000;
      let ok = false;
      while (!ok && Date.now() < deadline) {
        ok = await store.check(check(tag)).then(
          (r) => r.allowed,
          () => false,
        );
        if (!ok) await new Promise((r) => setTimeout(r, 200));
      }
      expect(ok).toBe(true);
      expect(await deployment.masterPort()).toBe(deployment.replica.port);
    } finally {
      await store.close();
      await deployment.stop();
    }
  }, 45_000);
});
