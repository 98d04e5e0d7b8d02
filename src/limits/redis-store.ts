// The Redis store: the whole decision is one Lua script (EVALSHA through ioredis defineCommand,
// which reloads it after SCRIPT FLUSH or a failover), on Redis's clock. Every key of a call shares
// one hash tag, so it runs on Redis Cluster too.
//
// Timing a check. The store batches the checks of one event-loop turn itself and writes them at
// once. `store.timeout` measures Redis, not this process: the proxy stops waiting for a check only
// when Redis has answered nothing at all for that long since the check was written, and it first
// lets the event loop read what already arrived, so a reply that sat in the proxy's own socket
// buffer while the process was busy is used rather than mistaken for a silent Redis. A Redis that
// keeps answering is waited for up to the check's deadline: hardWaitMs after writing, a time on
// Redis's clock that the check carries. The script refuses to act past it, so a check that runs late
// — in a paused or stopped Redis, from ioredis's offline queue, resent after a reconnect — changes
// nothing: no token, no quota, no slot.

import { readFileSync } from 'node:fs';
import type { Cluster, Redis, RedisOptions } from 'ioredis';
import { storeLateRepliesTotal, storeTimeoutsTotal } from '../observability/metrics.js';
import { createRedisClient } from '../redis-client.js';
import { WARMUP_LOCKOUT_KEY } from './keys.js';
import type { LimitCheck, LimitCode, LimitResult, LimitStore, TenantUsage, TokenCharge, UsageQuery } from './store.js';
import { DAYS_KEPT, dayName, StoreTimeoutError, windowBounds } from './store.js';

const WINDOW_LUA = readFileSync(new URL('./lua/window.lua', import.meta.url), 'utf8');
const SCRIPT = WINDOW_LUA + readFileSync(new URL('./lua/check.lua', import.meta.url), 'utf8');
const CHARGE_SCRIPT = WINDOW_LUA + readFileSync(new URL('./lua/charge.lua', import.meta.url), 'utf8');
const LOCKOUT_SCRIPT = readFileSync(new URL('./lua/lockout.lua', import.meta.url), 'utf8');
const SLOTS_SCRIPT = readFileSync(new URL('./lua/slots.lua', import.meta.url), 'utf8');
// Index 4 is PAST_DEADLINE, never a denial.
const CODES: readonly (LimitCode | undefined)[] = [undefined, 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'CONCURRENCY_EXCEEDED', undefined, 'TOKEN_QUOTA_EXCEEDED'];
/** check.lua's code for a call that reached Redis after its deadline (and did nothing). */
const PAST_DEADLINE = 4;
/** Index of Redis's clock (ms) in every reply of check.lua. */
const REDIS_NOW = 6;
/** The replies' clock offset estimate keeps its maximum over this window (and the one before). */
const OFFSET_WINDOW_MS = 10_000;
/** How long a check may wait for a Redis that keeps answering other calls; also its deadline. */
export function hardWaitMs(timeoutMs: number): number {
  return Math.max(500, 10 * timeoutMs);
}
/** One error object for every timed-out check: an outage must not cost a stack trace per request. */
const TIMED_OUT = new StoreTimeoutError();

type Client = (Redis | Cluster) & {
  portcullisCheck(...args: (string | number)[]): Promise<unknown>;
  portcullisLockout(...args: (string | number)[]): Promise<number>;
  portcullisSlots(...args: (string | number)[]): Promise<number>;
  portcullisCharge(...args: (string | number)[]): Promise<number>;
};

export interface RedisStoreOptions {
  readonly url: string;
  /** How long Redis may stay silent while a check waits (ms): store.timeout. */
  readonly timeoutMs: number;
}

/** The per-connection settings of the store's client. */
function storeConnection(timeoutMs: number): RedisOptions {
  return {
    enableAutoPipelining: true,
    // Checks are batched, written and timed by RedisStore itself (see the top of this file). Slot
    // releases and renewals are written at once too: a compensating release must reach Redis right
    // behind the check it compensates, not wait for an auto-pipeline still in flight (the checks
    // written meanwhile would find the slot taken).
    autoPipeliningIgnoredCommands: ['portcullisCheck', 'zrem', 'portcullisSlots'],
    // A backstop for the other calls (releases, renewals, lockout, usage), none of which a request
    // waits for: a queued command still fails after this.
    commandTimeout: hardWaitMs(timeoutMs) * 2,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true, // safe: a check that leaves the queue after its deadline does nothing
    lazyConnect: false,
    retryStrategy: (times) => Math.min(50 * times, 1000),
  };
}

/** Checks written together: they share a deadline and a watch. */
interface Batch {
  readonly checks: readonly PendingCheck[];
  /** performance.now() once written. */
  readonly sent: number;
}

/** One check waiting to be written, then for its answer. */
class PendingCheck {
  settled = false;
  constructor(
    readonly argv: (string | number)[],
    /** Where in argv the deadline goes (set when the batch is written). */
    readonly deadlineAt: number,
    readonly resolve: (r: LimitResult) => void,
    readonly reject: (err: unknown) => void,
  ) {}
}

export class RedisStore implements LimitStore {
  readonly kind = 'redis' as const;
  readonly #client: Client;
  readonly #timeoutMs: number;
  readonly #hardWaitMs: number;
  /** performance.now() when a check's answer was last read: Redis is alive while this moves. */
  #lastReply = 0;
  #queue: PendingCheck[] = [];
  #scheduled = false;
  /**
   * Lower bound of (Redis clock − performance.now()), from replies: Redis's `now` minus the local
   * time the reply was read, which is never earlier than when Redis ran the script. A deadline built
   * from a lower bound is never later, on Redis's clock, than the moment this proxy gives up. Kept as
   * a maximum over a sliding window so that a step back of Redis's clock is forgotten.
   */
  #offsetMax = -Infinity;
  #offsetPrev = -Infinity;
  #offsetSince = 0;

  constructor(options: RedisStoreOptions) {
    this.#timeoutMs = options.timeoutMs;
    this.#hardWaitMs = hardWaitMs(options.timeoutMs);
    const client = createRedisClient(options.url, {
      redis: storeConnection(options.timeoutMs),
      // ioredis groups auto-pipelined commands on a cluster by the slot of their first argument,
      // which for a script with a variable key count is the count, not a key: checks of tenants on
      // different nodes would share a pipeline and fail. Sent on their own, they route by their keys
      // (and slot releases keep their place behind the checks, as on a single server).
      clusterUnpipelined: ['portcullisCheck', 'zrem', 'portcullisSlots'],
    });
    client.defineCommand('portcullisCheck', { lua: SCRIPT });
    client.defineCommand('portcullisLockout', { lua: LOCKOUT_SCRIPT, numberOfKeys: 1 });
    client.defineCommand('portcullisSlots', { lua: SLOTS_SCRIPT, numberOfKeys: 1 });
    client.defineCommand('portcullisCharge', { lua: CHARGE_SCRIPT, numberOfKeys: 2 });
    // Errors surface per call (and are counted by the stage); an 'error' listener keeps ioredis
    // from crashing the process on connection loss.
    client.on('error', () => undefined);
    this.#client = client as Client;
  }

  get client(): Redis | Cluster {
    return this.#client;
  }

  check(req: LimitCheck): Promise<LimitResult> {
    const { buckets, quota, keyQuota, concurrency, tokens } = req;
    const nQuotas = (quota === undefined ? 0 : 1) + (keyQuota === undefined ? 0 : 1);
    const nKeys = buckets.length + nQuotas + (tokens === undefined ? 0 : 1) + (concurrency === undefined ? 0 : 1);
    const argv: (string | number)[] = [nKeys];
    for (const b of buckets) argv.push(b.key);
    if (quota !== undefined) argv.push(quota.key);
    if (keyQuota !== undefined) argv.push(keyQuota.key);
    if (tokens !== undefined) argv.push(tokens.key);
    if (concurrency !== undefined) argv.push(concurrency.key);
    argv.push(0, buckets.length, nQuotas, concurrency === undefined ? 0 : 1, tokens === undefined ? 0 : 1); // 0: the deadline, set when written
    for (const b of buckets) argv.push(b.ratePerMs, b.burst, b.cost, b.lease);
    if (quota !== undefined) argv.push(quota.limit, quota.window);
    if (keyQuota !== undefined) argv.push(keyQuota.limit, keyQuota.window);
    if (tokens !== undefined) argv.push(tokens.limit, tokens.window);
    if (concurrency !== undefined) argv.push(concurrency.limit, concurrency.ttlMs, concurrency.slot);
    return new Promise<LimitResult>((resolve, reject) => {
      this.#queue.push(new PendingCheck(argv, 1 + nKeys, resolve, reject));
      if (!this.#scheduled) {
        this.#scheduled = true;
        // After the poll phase: every check this turn of the loop made goes out in one write.
        setImmediate(this.#flush);
      }
    });
  }

  readonly #flush = (): void => {
    const batch = this.#queue;
    this.#queue = [];
    this.#scheduled = false;
    const client = this.#client;
    // Built from the time before writing: the deadline is never later than the proxy's last wait.
    const deadline = Math.floor(performance.now() + this.#hardWaitMs + this.#offset());
    const stream = 'stream' in client && client.status === 'ready' ? client.stream : undefined;
    stream?.cork();
    try {
      for (const p of batch) {
        p.argv[p.deadlineAt] = deadline;
        client.portcullisCheck(...p.argv).then(
          (r) => this.#answered(p, r),
          (err: unknown) => {
            if (p.settled) return;
            p.settled = true;
            p.reject(err);
          },
        );
      }
    } finally {
      stream?.uncork();
    }
    setTimeout(this.#watch, this.#timeoutMs, { checks: batch, sent: performance.now() }).unref();
  };

  // Timers run before the poll phase that reads sockets: the review waits one setImmediate so that
  // replies already received are read first.
  readonly #watch = (b: Batch): void => void setImmediate(this.#review, b);

  readonly #review = (b: Batch): void => {
    let waiting = false;
    for (const p of b.checks) if (!p.settled) waiting = true;
    if (!waiting) return;
    const now = performance.now();
    const silent = now - Math.max(this.#lastReply, b.sent);
    // A quarter of the timeout past the deadline, for an answer to a check run just before it.
    const left = this.#hardWaitMs + Math.max(1, this.#timeoutMs / 4) - (now - b.sent);
    if (silent < this.#timeoutMs && left > 0) {
      // Redis answers (it is busy, or this process was): wait on while it does.
      setTimeout(this.#watch, Math.max(1, Math.min(this.#timeoutMs - silent, left)), b).unref();
      return;
    }
    for (const p of b.checks) {
      if (p.settled) continue;
      p.settled = true;
      storeTimeoutsTotal.inc();
      p.reject(TIMED_OUT);
    }
  };

  #answered(p: PendingCheck, reply: unknown): void {
    this.#lastReply = performance.now();
    const r = Array.isArray(reply) ? (reply as unknown[]) : undefined;
    const redisNow = r?.[REDIS_NOW];
    if (typeof redisNow === 'number') this.#sample(redisNow);
    if (p.settled) {
      // The proxy had answered the request without this check: it did nothing (past its deadline),
      // or Redis fell silent and then ran it before its deadline (an allowed one spent its tokens and
      // quota; the stage released its slot).
      if (r !== undefined) storeLateRepliesTotal.labels(r[1] === PAST_DEADLINE ? 'expired' : r[0] === 1 ? 'allowed' : 'denied').inc();
      return;
    }
    p.settled = true;
    if (r !== undefined && r[1] === PAST_DEADLINE) {
      storeTimeoutsTotal.inc();
      return p.reject(TIMED_OUT);
    }
    const result = r === undefined ? undefined : parseResult(r);
    if (result === undefined) return p.reject(new Error('limits store: unexpected reply from the check script'));
    p.resolve(result);
  }

  #sample(redisNow: number): void {
    const t = performance.now();
    if (t - this.#offsetSince > OFFSET_WINDOW_MS) {
      this.#offsetPrev = this.#offsetMax;
      this.#offsetMax = -Infinity;
      this.#offsetSince = t;
    }
    const offset = redisNow - t;
    if (offset > this.#offsetMax) this.#offsetMax = offset;
  }

  /** Redis clock − performance.now(), as a lower bound (before any reply: this host's wall clock). */
  #offset(): number {
    const m = Math.max(this.#offsetMax, this.#offsetPrev);
    return m === -Infinity ? Date.now() - performance.now() : m;
  }

  release(key: string, slot: string): Promise<void> {
    return this.#client.zrem(key, slot).then(() => undefined);
  }

  refreshSlots(key: string, hold: readonly string[], drop: readonly string[], ttlMs: number): Promise<void> {
    return this.#client.portcullisSlots(key, ttlMs, hold.length, ...hold, ...drop).then(() => undefined);
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
    if (q.tokens === undefined) return { tenant: q.tenant, quota, buckets, concurrency };
    const [w, n] = await this.#client.hmget(q.tokens.key, 'w', 'n');
    const used = Number(w) === windowBounds(q.tokens.window, now).start ? Number(n ?? 0) : 0;
    const limit = q.tokens.limit;
    const tokens = { window: q.tokens.window, used, limit, remaining: limit === undefined ? undefined : Math.max(0, limit - used) };
    const days = Object.entries(await this.#client.hgetall(q.tokens.daysKey))
      .map(([d, v]) => [Number(d), Number(v)] as const)
      .sort((x, y) => x[0] - y[0]);
    return { tenant: q.tenant, quota, buckets, concurrency, tokens, tokensByDay: days.map(([d, v]) => ({ day: dayName(d), tokens: v })) };
  }

  async charge(c: TokenCharge): Promise<number> {
    return Number(await this.#client.portcullisCharge(c.key, c.daysKey, c.tokens, c.window, DAYS_KEPT));
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
    await Promise.all([this.check({ buckets: [], quota: undefined, concurrency: undefined }), this.lockedOut(WARMUP_LOCKOUT_KEY)]).catch(() => undefined);
    return true;
  }

  async close(): Promise<void> {
    this.#client.disconnect();
  }
}

/**
 * check.lua's reply as a result, or undefined when it is not one: a malformed reply is a store
 * fault (503 or a flagged allow), never read as a denial.
 */
function parseResult(r: readonly unknown[]): LimitResult | undefined {
  for (let i = 0; i <= REDIS_NOW; i++) if (typeof r[i] !== 'number') return undefined;
  const n = r as readonly number[];
  const allowed = n[0] === 1;
  if (!allowed && n[0] !== 0) return undefined;
  const code = CODES[n[1]!];
  if (allowed !== (code === undefined) || n[1]! < 0 || n[1]! >= CODES.length) return undefined;
  const granted = allowed ? n.slice(REDIS_NOW + 1) : [];
  for (const g of granted) if (typeof g !== 'number') return undefined;
  return {
    allowed,
    code,
    retryAfterS: allowed ? 0 : Math.max(1, Math.ceil(n[2]! / 1000)),
    bucket: n[3]!,
    remaining: n[4]!,
    resetS: Math.ceil(n[5]! / 1000),
    granted,
  };
}
