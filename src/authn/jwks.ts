// A remote JWKS as jose's createRemoteJWKSet keeps it (cache, cooldown between refetches on an
// unknown kid, one fetch in flight), with what jose leaves to us:
// - stale keys keep being served while the IdP is down: jose's own max-age is disabled (it would
//   make every request wait on a dead IdP); instead a stale set is refreshed in the background;
// - a dead IdP is not hammered: after a failed fetch, further fetches within the cooldown fail
//   fast (jose's cooldown only counts from the last *successful* fetch);
// - failures to get keys are reported as IdpUnavailable (→ 503), never as invalid tokens (→ 401).
// Sets are shared by URL + timings across policy reloads, so a reload does not forget the keys.
import { createRemoteJWKSet, customFetch, errors, type FlattenedJWSInput, type JWSHeaderParameters } from 'jose';
import { LRUCache } from 'lru-cache';
import { jwksFetchesTotal } from '../observability/metrics.js';

export class IdpUnavailable extends Error {
  override readonly name = 'IdpUnavailable';
}

export interface JwksOptions {
  readonly cooldownMs: number;
  readonly cacheMaxAgeMs: number;
  readonly timeoutMs: number;
  /** Issuer name, for the jwks fetch metric. */
  readonly issuer: string;
}

type KeyResolver = ReturnType<typeof createRemoteJWKSet>;
type ResolvedKey = Awaited<ReturnType<KeyResolver>>;

export class JwksSource {
  readonly url: string;
  readonly #remote: KeyResolver;
  readonly #options: JwksOptions;
  #lastSuccess = 0;
  #lastFailure = 0;

  constructor(url: string, options: JwksOptions) {
    this.url = url;
    this.#options = options;
    const success = jwksFetchesTotal.labels(options.issuer, 'success');
    const failure = jwksFetchesTotal.labels(options.issuer, 'failure');
    const guardedFetch = async (input: string | URL, init?: RequestInit): Promise<Response> => {
      if (Date.now() - this.#lastFailure < this.#options.cooldownMs) throw new IdpUnavailable('JWKS fetch failed recently; waiting for the cooldown');
      try {
        const res = await fetch(input, init);
        if (res.status !== 200) throw new IdpUnavailable(`JWKS endpoint answered ${res.status}`);
        this.#lastSuccess = Date.now();
        success.inc();
        return res;
      } catch (err) {
        this.#lastFailure = Date.now();
        failure.inc();
        throw err;
      }
    };
    this.#remote = createRemoteJWKSet(new URL(url), {
      cooldownDuration: options.cooldownMs,
      cacheMaxAge: Number.POSITIVE_INFINITY,
      timeoutDuration: options.timeoutMs,
      [customFetch]: guardedFetch,
    });
  }

  /** jose's key resolver interface: a key for this header, or a throw. */
  getKey = async (header: JWSHeaderParameters, token: FlattenedJWSInput): Promise<ResolvedKey> => {
    if (this.#lastSuccess !== 0 && Date.now() - this.#lastSuccess > this.#options.cacheMaxAgeMs) this.refreshInBackground();
    try {
      return await this.#remote(header, token);
    } catch (err) {
      if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys || err instanceof errors.JOSENotSupported) {
        // Within jose's cooldown an unknown kid is simply unknown; but when the IdP is failing we
        // cannot tell a rotated-in key from a forged one: that is the IdP's outage, not a 401.
        if (this.#lastFailure > this.#lastSuccess && err instanceof errors.JWKSNoMatchingKey) throw new IdpUnavailable('unknown kid while the JWKS endpoint is failing');
        throw err;
      }
      throw err instanceof IdpUnavailable ? err : new IdpUnavailable(`cannot get the JWKS: ${(err as Error).message}`);
    }
  };

  /** Fetch now unless a fetch failed within the cooldown; errors are counted, not thrown. */
  refreshInBackground(): void {
    if (this.#remote.reloading || Date.now() - this.#lastFailure < this.#options.cooldownMs) return;
    if (Date.now() - this.#lastSuccess < this.#options.cooldownMs) return;
    this.#remote.reload().catch(() => undefined);
  }

  /** Whether keys were ever fetched (readiness). */
  get loaded(): boolean {
    return this.#lastSuccess !== 0;
  }
}

// Shared across plans: a reload keeps the keys (and the outage protection) it already had.
const sources = new LRUCache<string, JwksSource>({ max: 256 });

export function jwksSource(url: string, options: JwksOptions): JwksSource {
  const key = `${url} ${options.cooldownMs} ${options.cacheMaxAgeMs} ${options.timeoutMs} ${options.issuer}`;
  let source = sources.get(key);
  if (source === undefined) {
    source = new JwksSource(url, options);
    sources.set(key, source);
  }
  return source;
}
