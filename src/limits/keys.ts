// Every key and channel Portcullis uses in the store, in one place. Keys of one tenant share the
// hash tag `{t:<tenant>}` (so one script call touches one Redis Cluster slot); a client IP's
// lockout counter has its own tag; dynamic API keys live under `{keys}`, whatever store.prefix says,
// because every replica and the admin API must find them under the same name.

/** store.prefix when the policy sets none. */
export const DEFAULT_PREFIX = 'portcullis:';

/** The hash tag every limit key of one tenant starts with ("-": requests without a tenant). */
export const tenantTag = (prefix: string, tenant: string): string => `${prefix}{t:${tenant}}`;
export const tierBucketKey = (tag: string, tier: string): string => `${tag}:tier:${tier}`;
export const quotaKey = (tag: string): string => `${tag}:quota`;
/** An API key's own bucket and quota (its `limits`), under its tenant's tag. */
export const keyBucketKey = (tag: string, keyId: string): string => `${tag}:key:${keyId}`;
export const keyQuotaKey = (tag: string, keyId: string): string => `${tag}:key:${keyId}:quota`;
/** Tokens the tenant spent in its current token window (metered upstreams). */
export const tokenSpendKey = (tag: string): string => `${tag}:tokens`;
/** Tokens the tenant spent per UTC day. */
export const tokenDaysKey = (tag: string): string => `${tag}:tokens:days`;
export const concurrencyKey = (tag: string): string => `${tag}:conc`;
/** One route bucket: the route, the bucket's position in its `limits`, and what it counts by. */
export const routeBucketKey = (tag: string, route: string, index: number, identity: string): string => `${tag}:r:${route}:${index}:${identity}`;
/** authentication.lockout's failure counter of one client IP (or IPv6 network). */
export const lockoutKey = (prefix: string, ip: string): string => `${prefix}{ip:${ip}}:lockout`;
/** A key the store's warm-up reads to load the lockout script (never written). */
export const WARMUP_LOCKOUT_KEY = lockoutKey(DEFAULT_PREFIX, 'warmup');

/** Dynamic API keys: digest → record, id → digest. */
export const KEYS_BY_DIGEST = 'portcullis:{keys}:byDigest';
export const KEYS_BY_ID = 'portcullis:{keys}:byId';
/** When each API key (static or dynamic) was last used: id → ISO date, written at most once a minute per key. */
export const KEYS_LAST_USED = 'portcullis:{keys}:lastUsed';
/** Static keys revoked at runtime: digest → revocation. */
export const STATIC_REVOKED = 'portcullis:{keys}:staticRevoked';
/** Pub/sub: a dynamic key changed (drop it from every replica's cache). */
export const KEYS_INVALIDATE_CHANNEL = 'portcullis:keys:invalidate';
/** Pub/sub: a static key was revoked. */
export const STATIC_REVOKED_CHANNEL = 'portcullis:keys:staticRevoked';
