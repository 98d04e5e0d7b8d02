// The Redis store: the whole decision is one Lua script (EVALSHA through ioredis defineCommand,
// which reloads it after SCRIPT FLUSH or a failover), auto-pipelined, on Redis's clock. Every key of
// a call shares one hash tag, so it runs on Redis Cluster too. A short command timeout keeps a
// stalled Redis from stalling requests: the stage then applies store.onError.
import { readFileSync } from 'node:fs';
import type { Redis, Cluster, RedisOptions } from 'ioredis';
import type { LimitCheck, LimitCode, LimitResult, LimitStore, TenantUsage, UsageQuery } from './store.js';
import { windowBounds } from './store.js';
import { createRedisClient } from '../redis-client.js';

const SCRIPT = readFileSync(new URL('./lua/check.lua', import.meta.url), 'utf8');
const LOCKOUT_SCRIPT = readFileSync(new URL('./lua/lockout.lua', import.meta.url), 'utf8');
const CODES: readonly (LimitCode | undefined)[] = [undefined, 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'CONCURRENCY_EXCEEDED'];

type Client = (Redis | Cluster) & {
  portcullisCheck(...args: (string | number)[]): Promise<number[]>;
  portcullisLockout(...args: (string | number)[]): Promise<number>;
};

export interface RedisStoreOptions {
  readonly url: string;
  /** Per-call timeout (ms). */
  readonly timeoutMs: number;
}

/** The per-connection settings of the store's client. */
function storeConnection(timeoutMs: number): RedisOptions {
  return {
    enableAutoPipelining: true,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true, // bounded by commandTimeout: a queued command still fails after timeoutMs
    lazyConnect: false,
    retryStrategy: (times) => Math.min(50 * times, 1000),
  };
}

export class RedisStore implements LimitStore {
  readonly kind = 'redis' as const;
  readonly #client: Client;

  constructor(options: RedisStoreOptions) {
    const client = createRedisClient(options.url, {
      redis: storeConnection(options.timeoutMs),
      // ioredis groups auto-pipelined commands on a cluster by the slot of their first argument,
      // which for a script with a variable key count is the count, not a key: checks of tenants on
      // different nodes would share a pipeline and fail. Sent on their own, they route by their keys.
      clusterUnpipelined: ['portcullisCheck'],
    });
    client.defineCommand('portcullisCheck', { lua: SCRIPT });
    client.defineCommand('portcullisLockout', { lua: LOCKOUT_SCRIPT, numberOfKeys: 1 });
    // Errors surface per call (and are counted by the stage); an 'error' listener keeps ioredis
    // from crashing the process on connection loss.
    client.on('error', () => undefined);
    this.#client = client as Client;
  }

  get client(): Redis | Cluster {
    return this.#client;
  }

  async check(req: LimitCheck): Promise<LimitResult> {
    const keys: string[] = [];
    const args: (string | number)[] = [req.buckets.length, req.quota === undefined ? 0 : 1, req.concurrency === undefined ? 0 : 1];
    for (const b of req.buckets) {
      keys.push(b.key);
      args.push(b.ratePerMs, b.burst, b.cost, b.lease);
    }
    if (req.quota !== undefined) {
      keys.push(req.quota.key);
      args.push(req.quota.limit, req.quota.window);
    }
    if (req.concurrency !== undefined) {
      keys.push(req.concurrency.key);
      args.push(req.concurrency.limit, req.concurrency.ttlMs, req.concurrency.slot);
    }
    const r = await this.#client.portcullisCheck(keys.length, ...keys, ...args);
    const allowed = r[0] === 1;
    return {
      allowed,
      code: CODES[r[1]!],
      retryAfterS: allowed ? 0 : Math.max(1, Math.ceil(r[2]! / 1000)),
      bucket: r[3]!,
      remaining: r[4]!,
      resetS: Math.ceil(r[5]! / 1000),
      granted: allowed ? r.slice(6) : [],
    };
  }

  release(key: string, slot: string): void {
    this.#client.zrem(key, slot).catch(() => undefined); // the slot expires on its own if this fails
  }

  async usage(q: UsageQuery): Promise<TenantUsage> {
    const [secs, micros] = await this.#client.time();
    const now = Number(secs) * 1000 + Math.floor(Number(micros) / 1000);
    let quota: TenantUsage['quota'];
    if (q.quota !== undefined) {
      const [w, n] = await this.#client.hmget(q.quota.key, 'w', 'n');
      const used = Number(w) === windowBounds(q.quota.window, now).start ? Number(n ?? 0) : 0;
      quota = { window: q.quota.window, limit: q.quota.limit, used, remaining: Math.max(0, q.quota.limit - used) };
    }
    const buckets = [];
    for (const b of q.buckets) {
      const [t, ts] = await this.#client.hmget(b.key, 't', 'ts');
      const tokens = t === null ? b.burst : Math.min(b.burst, Number(t) + (now - Number(ts)) * b.ratePerMs);
      buckets.push({ key: b.key, tokens: Math.floor(tokens), burst: b.burst });
    }
    let concurrency: TenantUsage['concurrency'];
    if (q.concurrency !== undefined) {
      const inUse = await this.#client.zcount(q.concurrency.key, `(${now}`, '+inf');
      concurrency = { limit: q.concurrency.limit, inUse };
    }
    return { tenant: q.tenant, quota, buckets, concurrency };
  }

  async lockedOut(key: string): Promise<number> {
    return Math.max(0, Number(await this.#client.portcullisLockout(key, 0, 0, 0)));
  }

  async recordFailure(key: string, failures: number, windowMs: number, durationMs: number): Promise<number> {
    return Math.max(0, Number(await this.#client.portcullisLockout(key, failures, Math.max(1, Math.round(windowMs)), Math.max(1, Math.round(durationMs)))));
  }

  async warmUp(maxWaitMs: number): Promise<boolean> {
    const client = this.#client;
    if (client.status !== 'ready') {
      const ready = await new Promise<boolean>((resolve) => {
        const done = (ok: boolean): void => {
          clearTimeout(timer);
          client.off('ready', onReady);
          resolve(ok);
        };
        const onReady = (): void => done(true);
        const timer = setTimeout(() => done(false), maxWaitMs);
        client.once('ready', onReady);
      });
      if (!ready) return false;
    }

    // One call of each script through the client: ioredis sends a script it has not run yet with
    // EVAL (the whole script) on every command of the first pipeline, so without this the first burst
    // of requests would each upload it and could blow their short timeout. Afterwards: EVALSHA.
    await Promise.all([this.check({ buckets: [], quota: undefined, concurrency: undefined }), this.lockedOut('portcullis:{warmup}:lockout')]).catch(() => undefined);
    return true;
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}
