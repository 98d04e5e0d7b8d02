// Dynamic API keys: created through the admin API, stored hashed (digest → record), found
// by DynamicKeyLookup through an LRU cache with negative caching. Revocation reaches every replica
// within ~1 s: Redis pub/sub on `portcullis:keys:invalidate` drops the cached entry; the memory store
// invalidates locally. app.ts creates one DynamicKeyLookup and hands it to the policy compiler,
// which appends it to every compiled ApiKeyAuthenticator (so dynamic keys need an
// `authentication.apiKeys` section in the policy).

import type { Cluster, Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from 'pino';
import type { Plan } from '../core/plan.js';
import { compileKeyLimits, type KeyLimitsSpec } from '../limits/key-limits.js';
import { KEYS_BY_DIGEST, KEYS_BY_ID, KEYS_INVALIDATE_CHANNEL, KEYS_LAST_USED, STATIC_REVOKED, STATIC_REVOKED_CHANNEL } from '../limits/keys.js';
import type { Diagnostic } from '../policy/diagnostics.js';
import type { PlanGuard } from '../policy/manager.js';
import { diagnosticAt } from '../policy/source-map.js';
import { createRedisClient } from '../redis-client.js';
import type { ApiKeyRecord, KeyLookup, RevokedKeys } from './api-key.js';

export interface StoredKey {
  readonly id: string;
  /** Hex sha256 of the key (never the key). */
  readonly digest: string;
  readonly tenant: string;
  readonly subject: string;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
  /** ISO dates. */
  readonly created: string;
  readonly expires: string | undefined;
  /** The key's own rate and quota, as in a static key's `limits`. */
  readonly limits?: KeyLimitsSpec | undefined;
  /** Rotation: the key this one replaced, and the key that replaced this one. */
  readonly rotatedFrom?: string | undefined;
  readonly rotatedTo?: string | undefined;
}

export interface KeyStore {
  readonly kind: 'memory' | 'redis';
  put(key: StoredKey): Promise<'ok' | 'duplicate'>;
  byDigest(digest: string): Promise<StoredKey | undefined>;
  list(tenant?: string): Promise<StoredKey[]>;
  /** The removed key, or undefined when the id is unknown. */
  remove(id: string): Promise<StoredKey | undefined>;
  /** Which of `ids` a stored key already has (one round trip). */
  takenIds(ids: readonly string[]): Promise<Set<string>>;
  byId(id: string): Promise<StoredKey | undefined>;
  /** Rewrites a stored key's record (same id and digest); false when it is gone. Every replica drops its cached copy. */
  update(key: StoredKey): Promise<boolean>;
  /** Records when keys (static or dynamic, by id) were last used: id → ISO date. */
  touch(used: ReadonlyMap<string, string>): Promise<void>;
  /** Last use of every key that has one, by id. */
  lastUsed(): Promise<Map<string, string>>;
  /** Called with a digest whenever any replica revokes it. */
  onInvalidate(listener: (digest: string) => void): void;
  /**
   * Disables a static key of the policy (by its digest) at runtime. The policy still lists it; the
   * revocation lives here so that it outlasts reloads and restarts and reaches every replica. Returns
   * the revocation in force: this one, or an earlier one for the same digest.
   */
  revokeStatic(revocation: StaticRevocation): Promise<StaticRevocation>;
  /** Every static key revocation, by digest. */
  staticRevocations(): Promise<Map<string, StaticRevocation>>;
  /** Called with the digest of a static key whenever any replica (this one included) revokes it. */
  onStaticRevoked(listener: (digest: string) => void): void;
  close(): Promise<void>;
}

export interface StaticRevocation {
  /** Hex sha256 of the key, as in the policy's `hash` (a new hash under the same id is a new key). */
  readonly digest: string;
  readonly id: string;
  /** ISO date. */
  readonly revoked: string;
}

const UPDATE_SCRIPT = `if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
return 1`;

// One hash tag for both: revoking deletes from both in one MULTI, which Redis Cluster allows only within a slot.

export class MemoryKeyStore implements KeyStore {
  readonly kind = 'memory' as const;
  readonly #byDigest = new Map<string, StoredKey>();
  readonly #byId = new Map<string, string>();
  readonly #listeners: ((digest: string) => void)[] = [];
  readonly #revoked = new Map<string, StaticRevocation>();
  readonly #revokedListeners: ((digest: string) => void)[] = [];
  readonly #lastUsed = new Map<string, string>();
  async put(key: StoredKey): Promise<'ok' | 'duplicate'> {
    if (this.#byId.has(key.id) || this.#byDigest.has(key.digest)) return 'duplicate';
    this.#byDigest.set(key.digest, key);
    this.#byId.set(key.id, key.digest);
    for (const l of this.#listeners) l(key.digest);
    return 'ok';
  }
  async byDigest(digest: string): Promise<StoredKey | undefined> {
    return this.#byDigest.get(digest);
  }
  async list(tenant?: string): Promise<StoredKey[]> {
    return [...this.#byDigest.values()].filter((k) => tenant === undefined || k.tenant === tenant);
  }
  async remove(id: string): Promise<StoredKey | undefined> {
    const digest = this.#byId.get(id);
    if (digest === undefined) return undefined;
    const key = this.#byDigest.get(digest);
    this.#byId.delete(id);
    this.#byDigest.delete(digest);
    for (const l of this.#listeners) l(digest);
    return key;
  }
  async takenIds(ids: readonly string[]): Promise<Set<string>> {
    return new Set(ids.filter((id) => this.#byId.has(id)));
  }
  async byId(id: string): Promise<StoredKey | undefined> {
    const digest = this.#byId.get(id);
    return digest === undefined ? undefined : this.#byDigest.get(digest);
  }
  async update(key: StoredKey): Promise<boolean> {
    if (this.#byId.get(key.id) !== key.digest) return false;
    this.#byDigest.set(key.digest, key);
    for (const l of this.#listeners) l(key.digest);
    return true;
  }
  async touch(used: ReadonlyMap<string, string>): Promise<void> {
    for (const [id, at] of used) if ((this.#lastUsed.get(id) ?? '') < at) this.#lastUsed.set(id, at);
  }
  async lastUsed(): Promise<Map<string, string>> {
    return new Map(this.#lastUsed);
  }
  onInvalidate(listener: (digest: string) => void): void {
    this.#listeners.push(listener);
  }
  async revokeStatic(revocation: StaticRevocation): Promise<StaticRevocation> {
    const earlier = this.#revoked.get(revocation.digest);
    if (earlier !== undefined) return earlier;
    this.#revoked.set(revocation.digest, revocation);
    for (const l of this.#revokedListeners) l(revocation.digest);
    return revocation;
  }
  async staticRevocations(): Promise<Map<string, StaticRevocation>> {
    return new Map(this.#revoked);
  }
  onStaticRevoked(listener: (digest: string) => void): void {
    this.#revokedListeners.push(listener);
  }
  async close(): Promise<void> {}
}

export class RedisKeyStore implements KeyStore {
  readonly kind = 'redis' as const;
  readonly #cmd: Redis | Cluster;
  readonly #sub: Redis | Cluster;
  readonly #listeners: ((digest: string) => void)[] = [];
  readonly #revokedListeners: ((digest: string) => void)[] = [];
  constructor(url: string) {
    this.#cmd = createRedisClient(url, { redis: { lazyConnect: false, maxRetriesPerRequest: 2 } });
    this.#sub = createRedisClient(url, { redis: { lazyConnect: false } });
    this.#cmd.on('error', () => undefined);
    this.#sub.on('error', () => undefined);
    void this.#sub.subscribe(KEYS_INVALIDATE_CHANNEL, STATIC_REVOKED_CHANNEL).catch(() => undefined);
    this.#sub.on('message', (channel: string, digest: string) => {
      if (channel === KEYS_INVALIDATE_CHANNEL) for (const l of this.#listeners) l(digest);
      else if (channel === STATIC_REVOKED_CHANNEL) for (const l of this.#revokedListeners) l(digest);
    });
  }
  async put(key: StoredKey): Promise<'ok' | 'duplicate'> {
    const set = await this.#cmd.hsetnx(KEYS_BY_ID, key.id, key.digest);
    if (set === 0) return 'duplicate';
    const ok = await this.#cmd.hsetnx(KEYS_BY_DIGEST, key.digest, JSON.stringify(key));
    if (ok === 0) {
      await this.#cmd.hdel(KEYS_BY_ID, key.id);
      return 'duplicate';
    }
    // A replica may have cached this digest as unknown: drop it there too.
    await this.#cmd.publish(KEYS_INVALIDATE_CHANNEL, key.digest);
    return 'ok';
  }
  async byDigest(digest: string): Promise<StoredKey | undefined> {
    const raw = await this.#cmd.hget(KEYS_BY_DIGEST, digest);
    return raw === null ? undefined : (JSON.parse(raw) as StoredKey);
  }
  async list(tenant?: string): Promise<StoredKey[]> {
    const all = await this.#cmd.hvals(KEYS_BY_DIGEST);
    return all.map((r) => JSON.parse(r) as StoredKey).filter((k) => tenant === undefined || k.tenant === tenant);
  }
  async remove(id: string): Promise<StoredKey | undefined> {
    const digest = await this.#cmd.hget(KEYS_BY_ID, id);
    if (digest === null) return undefined;
    const raw = await this.#cmd.hget(KEYS_BY_DIGEST, digest);
    await this.#cmd.multi().hdel(KEYS_BY_ID, id).hdel(KEYS_BY_DIGEST, digest).exec();
    await this.#cmd.publish(KEYS_INVALIDATE_CHANNEL, digest);
    return raw === null ? undefined : (JSON.parse(raw) as StoredKey);
  }
  async byId(id: string): Promise<StoredKey | undefined> {
    const digest = await this.#cmd.hget(KEYS_BY_ID, id);
    return digest === null ? undefined : this.byDigest(digest);
  }
  async update(key: StoredKey): Promise<boolean> {
    // Only while the id still names this digest: a key revoked meanwhile stays revoked.
    const ok = await this.#cmd.eval(UPDATE_SCRIPT, 2, KEYS_BY_ID, KEYS_BY_DIGEST, key.id, key.digest, JSON.stringify(key));
    if (ok !== 1) return false;
    await this.#cmd.publish(KEYS_INVALIDATE_CHANNEL, key.digest);
    return true;
  }
  async touch(used: ReadonlyMap<string, string>): Promise<void> {
    if (used.size === 0) return;
    await this.#cmd.hset(KEYS_LAST_USED, Object.fromEntries(used));
  }
  async lastUsed(): Promise<Map<string, string>> {
    return new Map(Object.entries(await this.#cmd.hgetall(KEYS_LAST_USED)));
  }
  async takenIds(ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set();
    const digests = await this.#cmd.hmget(KEYS_BY_ID, ...ids);
    return new Set(ids.filter((_, i) => digests[i] !== null));
  }
  onInvalidate(listener: (digest: string) => void): void {
    this.#listeners.push(listener);
  }
  async revokeStatic(revocation: StaticRevocation): Promise<StaticRevocation> {
    const set = await this.#cmd.hsetnx(STATIC_REVOKED, revocation.digest, JSON.stringify(revocation));
    if (set === 0) {
      const raw = await this.#cmd.hget(STATIC_REVOKED, revocation.digest);
      if (raw !== null) return JSON.parse(raw) as StaticRevocation;
    }
    await this.#cmd.publish(STATIC_REVOKED_CHANNEL, revocation.digest);
    // This replica refuses the key before the caller hears "revoked", not when its own message returns.
    for (const l of this.#revokedListeners) l(revocation.digest);
    return revocation;
  }
  async staticRevocations(): Promise<Map<string, StaticRevocation>> {
    const all = await this.#cmd.hgetall(STATIC_REVOKED);
    return new Map(Object.entries(all).map(([digest, raw]) => [digest, JSON.parse(raw) as StaticRevocation]));
  }
  onStaticRevoked(listener: (digest: string) => void): void {
    this.#revokedListeners.push(listener);
  }
  async close(): Promise<void> {
    this.#sub.disconnect();
    await this.#cmd.quit().catch(() => undefined);
  }
}

/** The static API key ids of a policy, in document order. */
export function staticKeyIds(plan: Plan): string[] {
  return (plan.document.authentication?.apiKeys?.keys ?? []).map((k) => k.id);
}

/** How long a reload waits for the key store to say which ids it holds before going ahead unchecked. */
const GUARD_TIMEOUT_MS = 2_000;

/**
 * A policy may not bring a static key whose id a dynamic key already has: both would act as one actor
 * in the audit trail, and revoking "that id" would remove only the dynamic one. When the store cannot
 * answer in time the policy is let through (logged): the store's availability must not block policy changes.
 */
export function keyIdGuard(store: KeyStore, logger: Logger): PlanGuard<Plan> {
  return async (plan, position) => {
    const ids = staticKeyIds(plan);
    if (ids.length === 0) return [];
    let taken: Set<string>;
    let timer: NodeJS.Timeout | undefined;
    try {
      taken = await Promise.race([
        store.takenIds(ids),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${GUARD_TIMEOUT_MS}ms`)), GUARD_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      logger.warn({ err }, 'cannot check the static key ids against the dynamic keys; loading the policy unchecked');
      return [];
    } finally {
      clearTimeout(timer);
    }
    return ids.flatMap((id, i): Diagnostic[] => {
      if (!taken.has(id)) return [];
      const path = ['authentication', 'apiKeys', 'keys', i, 'id'];
      const message = `key id "${id}" is already used by a dynamic key (created through the admin API); revoke it (DELETE /admin/keys/${encodeURIComponent(id)}) or give this key another id`;
      return [diagnosticAt(position(path), path, message)];
    });
  };
}

export function createKeyStore(storeUrl: string | undefined): KeyStore {
  return storeUrl === undefined ? new MemoryKeyStore() : new RedisKeyStore(storeUrl);
}

const NOT_FOUND = Symbol('not-found');
type Cached = ApiKeyRecord | typeof NOT_FOUND;

function toRecord(k: StoredKey): ApiKeyRecord {
  const limits = compileKeyLimits(k.limits);
  return {
    id: k.id,
    principal: Object.freeze({
      subject: k.subject,
      tenant: k.tenant,
      roles: Object.freeze([...k.roles]),
      permissions: Object.freeze([...k.permissions]),
      keyId: k.id,
      via: 'apiKey' as const,
      ...(limits === undefined ? {} : { limits }),
    }),
    expiresAt: k.expires === undefined ? undefined : Date.parse(k.expires),
    disabled: false,
  };
}

export interface DynamicKeyLookupOptions {
  readonly max?: number;
  /** Positive entries (revocation also drops them via invalidation). */
  readonly ttlMs?: number;
  /** Unknown digests: remembered this long so junk keys do not hit the store per request. */
  readonly negativeTtlMs?: number;
}

/**
 * How often each replica re-reads the static key revocations: the announcement is pub/sub, which a
 * replica that was disconnected (or started while the store was down) never hears.
 */
const REVOCATION_RESYNC_MS = 5_000;
/** A key's last use is written at most this often per replica. */
const LAST_USED_EVERY_MS = 60_000;
/** Uses noted within this long go to the store in one write. */
const TOUCH_BATCH_MS = 1_000;
const MAX_LAST_SEEN = 100_000;

export class DynamicKeyLookup implements KeyLookup, RevokedKeys {
  #store: KeyStore | undefined;
  readonly #cache: LRUCache<string, { v: Cached }>;
  readonly #inflight = new Map<string, Promise<ApiKeyRecord | undefined>>();
  readonly #negativeTtl: number;
  /** Digests of the policy's static keys revoked at runtime (read on the hot path: a Set, no store call). */
  #revoked = new Set<string>();
  #resync: NodeJS.Timeout | undefined;
  /** When each key's last use was last written (ms), and the uses waiting to be written. */
  readonly #lastSeen = new Map<string, number>();
  #toTouch = new Map<string, string>();
  #touchTimer: NodeJS.Timeout | undefined;
  /** The store may be attached later: app.ts only knows store.url once the policy is loaded. */
  constructor(store?: KeyStore, opts: DynamicKeyLookupOptions = {}) {
    this.#negativeTtl = opts.negativeTtlMs ?? 1000;
    this.#cache = new LRUCache({ max: opts.max ?? 10_000, ttl: opts.ttlMs ?? 60_000 });
    if (store) this.attach(store);
  }
  get store(): KeyStore | undefined {
    return this.#store;
  }
  attach(store: KeyStore): void {
    this.#store = store;
    this.#cache.clear();
    store.onInvalidate((digest) => {
      this.#cache.delete(digest);
      this.#inflight.delete(digest);
    });
    store.onStaticRevoked((digest) => this.#revoked.add(digest));
    clearInterval(this.#resync);
    this.#resync = setInterval(() => void this.syncRevocations(), REVOCATION_RESYNC_MS).unref();
  }
  /** Whether a static key of the policy was revoked at runtime. */
  has(digest: string): boolean {
    return this.#revoked.has(digest);
  }
  /**
   * Reads every static key revocation from the store. Resolves false when the store does not answer
   * within `timeoutMs`: the replica then serves with what it knew, and retries on its own.
   */
  async syncRevocations(timeoutMs = 2_000): Promise<boolean> {
    const store = this.#store;
    if (store === undefined) return true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const all = await Promise.race([
        store.staticRevocations(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error('timeout')), timeoutMs);
        }),
      ]);
      // Announcements heard meanwhile are kept: a revocation is never undone here.
      this.#revoked = new Set([...this.#revoked, ...all.keys()]);
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
  close(): void {
    clearInterval(this.#resync);
    this.#resync = undefined;
    if (this.#touchTimer !== undefined) {
      clearTimeout(this.#touchTimer);
      this.#flushTouches();
    }
  }
  lookup(digest: string): ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined> {
    const store = this.#store;
    if (store === undefined) return undefined;
    const hit = this.#cache.get(digest);
    if (hit !== undefined) return hit.v === NOT_FOUND ? undefined : hit.v;
    const pending = this.#inflight.get(digest);
    if (pending) return pending;
    const p = store.byDigest(digest).then(
      (k) => {
        if (this.#inflight.get(digest) === p) {
          this.#inflight.delete(digest);
          if (k === undefined) this.#cache.set(digest, { v: NOT_FOUND }, { ttl: this.#negativeTtl });
          else this.#cache.set(digest, { v: toRecord(k) });
        }
        return k === undefined ? undefined : toRecord(k);
      },
      () => {
        this.#inflight.delete(digest);
        return undefined; // store down: fail closed (unknown)
      },
    );
    this.#inflight.set(digest, p);
    return p;
  }
  /**
   * An accepted key (static or dynamic) was used at `now`. Written to the store at most once a
   * LAST_USED_EVERY_MS per key and replica, batched, off the request path; never a write per request.
   */
  used(keyId: string, now: number): void {
    const last = this.#lastSeen.get(keyId);
    if (last !== undefined && now - last < LAST_USED_EVERY_MS) return;
    if (this.#lastSeen.size >= MAX_LAST_SEEN) this.#lastSeen.clear();
    this.#lastSeen.set(keyId, now);
    this.#toTouch.set(keyId, new Date(now).toISOString());
    if (this.#touchTimer === undefined) this.#touchTimer = setTimeout(this.#flushTouches, TOUCH_BATCH_MS).unref();
  }

  readonly #flushTouches = (): void => {
    this.#touchTimer = undefined;
    const batch = this.#toTouch;
    this.#toTouch = new Map();
    // Lost when the store is down: the next use a minute later writes it again.
    void this.#store?.touch(batch).catch(() => undefined);
  };

  /** Local invalidation (the store also broadcasts). */
  invalidate(digest: string): void {
    this.#cache.delete(digest);
  }
}
