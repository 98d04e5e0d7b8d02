// JWT bearer tokens, verified with jose. The issuer is chosen by the token's `iss` (peeked before
// verification only to pick which keys to verify with), then jwtVerify checks signature, pinned
// algorithms, exp (required), nbf, iss, aud, typ and crit. Keys never come from token headers:
// tokens that carry jku/x5u/jwk/x5c are refused outright. Verified tokens are cached (bounded,
// TTL never past exp) so a repeated token costs a map lookup, not a signature check.

import type { KeyObject } from 'node:crypto';
import { decodeJwt, decodeProtectedHeader, errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { jwtCacheTotal } from '../observability/metrics.js';
import { firstHeader } from '../request-headers.js';
import { type Authenticator, type AuthOutcome, NOT_MINE } from './authenticator.js';
import { type ClaimPath, claimAt, listClaim, stringClaim } from './claims.js';
import { IdpUnavailable } from './jwks.js';

const MAX_TOKEN_LENGTH = 16 * 1024;
const CACHE_MAX_ENTRIES = 10_000;
/** Even a long-lived token is re-verified this often (key revocation, policy changes). */
const CACHE_MAX_TTL_MS = 5 * 60_000;
const FORBIDDEN_HEADERS = ['jku', 'x5u', 'jwk', 'x5c'] as const;

export interface JwtIssuer {
  /** The policy's name for this issuer (the issuer of its principals, logs). */
  readonly name: string;
  readonly issuer: string;
  readonly audience: string | readonly string[];
  readonly algorithms: readonly string[];
  readonly clockToleranceSec: number;
  readonly typ: string | undefined;
  readonly key: JWTVerifyGetKey | KeyObject | Uint8Array;
  readonly claims: { readonly subject: ClaimPath; readonly tenant: ClaimPath | undefined; readonly roles: ClaimPath | undefined; readonly permissions: ClaimPath | undefined };
}

/** Why a token was refused; logged with kid/iss (never the token), never shown to the client. */
export type JwtFailure =
  | 'too-large'
  | 'malformed'
  | 'key-in-header'
  | 'unknown-issuer'
  | 'expired'
  | 'bad-signature'
  | 'bad-claims'
  | 'unknown-kid'
  | 'algorithm'
  | 'unsafe-identity'
  | 'idp-unavailable'
  | 'invalid';

export interface JwtOutcome extends AuthOutcome {
  readonly failure?: JwtFailure;
}

interface Cached {
  readonly outcome: JwtOutcome;
  /** Epoch ms from which the token is verified again (never past its exp). */
  readonly until: number;
}

/** The token a keep-alive connection last presented, and its cache entry. */
interface ConnectionMemo {
  token: string;
  cached: Cached;
}

const BEARER = /^bearer +/i;

export class JwtAuthenticator implements Authenticator {
  readonly method = 'jwt' as const;
  readonly challenge: string;
  readonly #byIssuer: Map<string, JwtIssuer>;
  readonly #cache = new LRUCache<string, Cached>({ max: CACHE_MAX_ENTRIES, ttl: CACHE_MAX_TTL_MS, maxSize: 32 * 1024 * 1024, sizeCalculation: (_v, k) => k.length + 64 });
  /**
   * A client sends the same token on every request of a keep-alive connection: comparing it with
   * the connection's last one costs a memcmp, where the cache lookup hashes the whole token (and
   * lru-cache arms a timer to cache its clock). Entries go with their connection.
   */
  readonly #byConnection = new WeakMap<object, ConnectionMemo>();
  readonly #hit = jwtCacheTotal.cell('hit');
  readonly #miss = jwtCacheTotal.cell('miss');
  readonly #invalid: Deny;
  readonly #expired: Deny;
  readonly #unavailable: Deny;

  constructor(issuers: readonly JwtIssuer[], realm = 'portcullis') {
    this.#byIssuer = new Map(issuers.map((i) => [i.issuer, i]));
    this.challenge = `Bearer realm="${realm}"`;
    this.#invalid = deny('AUTH_INVALID', undefined, { 'www-authenticate': `${this.challenge}, error="invalid_token"` });
    this.#expired = deny('AUTH_EXPIRED', undefined, { 'www-authenticate': `${this.challenge}, error="invalid_token", error_description="The token has expired"` });
    this.#unavailable = deny('IDP_UNAVAILABLE');
  }

  authenticate(rawHeaders: readonly string[], connection?: object): JwtOutcome | Promise<JwtOutcome> | typeof NOT_MINE {
    const header = firstHeader(rawHeaders, 'authorization'); // a repeated Authorization was refused (400) before
    if (header === undefined) return NOT_MINE;
    const scheme = BEARER.exec(header);
    if (scheme === null) return NOT_MINE;
    const token = header.slice(scheme[0].length).trim();
    return this.verify(token, connection);
  }

  verify(token: string, connection?: object): JwtOutcome | Promise<JwtOutcome> {
    if (token.length > MAX_TOKEN_LENGTH) return this.#fail('too-large');
    const memo = connection === undefined ? undefined : this.#byConnection.get(connection);
    if (memo !== undefined && memo.token === token && Date.now() < memo.cached.until) {
      this.#hit.n++;
      return memo.cached.outcome;
    }
    const cached = this.#cache.get(token);
    if (cached !== undefined && Date.now() < cached.until) {
      this.#hit.n++;
      if (memo !== undefined) {
        memo.token = token;
        memo.cached = cached;
      } else if (connection !== undefined) {
        this.#byConnection.set(connection, { token, cached });
      }
      return cached.outcome;
    }
    this.#miss.n++;
    return this.#verifyUncached(token);
  }

  async #verifyUncached(token: string): Promise<JwtOutcome> {
    let kid: string | undefined;
    let iss: string | undefined;
    let issuer: JwtIssuer | undefined;
    try {
      const header = decodeProtectedHeader(token);
      kid = typeof header.kid === 'string' ? header.kid.slice(0, 128) : undefined;
      for (const name of FORBIDDEN_HEADERS) if (header[name] !== undefined) return this.#fail('key-in-header', kid);
      const peeked = decodeJwt(token).iss;
      iss = typeof peeked === 'string' ? peeked.slice(0, 256) : undefined;
      issuer = iss === undefined ? undefined : this.#byIssuer.get(iss);
    } catch {
      return this.#fail('malformed', kid, iss);
    }
    if (issuer === undefined) return this.#fail('unknown-issuer', kid, iss);
    let payload: JWTPayload;
    try {
      const options = {
        issuer: issuer.issuer,
        audience: issuer.audience as string | string[],
        algorithms: issuer.algorithms as string[],
        clockTolerance: issuer.clockToleranceSec,
        requiredClaims: ['exp'],
        ...(issuer.typ === undefined ? {} : { typ: issuer.typ }),
      };
      // Two calls because jwtVerify's overloads (key resolver vs key) do not accept the union.
      const result = typeof issuer.key === 'function' ? await jwtVerify(token, issuer.key, options) : await jwtVerify(token, issuer.key, options);
      payload = result.payload;
    } catch (err) {
      return this.#fail(failureOf(err), kid, iss);
    }
    const principal = this.#principal(issuer, payload);
    if (principal === undefined) return this.#fail('unsafe-identity', kid, iss);
    const outcome: JwtOutcome = Object.freeze({ principal, kid, iss });
    const now = Date.now();
    const ttl = Math.min(CACHE_MAX_TTL_MS, (payload.exp as number) * 1000 - now);
    if (ttl > 0) this.#cache.set(token, { outcome, until: now + ttl }, { ttl });
    return outcome;
  }

  #principal(issuer: JwtIssuer, payload: JWTPayload): Principal | undefined {
    const c = issuer.claims;
    const subject = stringClaim(claimAt(payload, c.subject));
    const tenant = c.tenant === undefined ? undefined : stringClaim(claimAt(payload, c.tenant));
    const roles = c.roles === undefined ? [] : listClaim(claimAt(payload, c.roles));
    const permissions = c.permissions === undefined ? [] : listClaim(claimAt(payload, c.permissions));
    if (typeof subject !== 'string' || tenant === null || roles === null || permissions === null) return undefined;
    return Object.freeze({
      subject,
      tenant,
      roles: Object.freeze([...roles]),
      permissions: Object.freeze([...permissions]),
      keyId: undefined,
      issuer: issuer.name,
      claims: Object.freeze(payload),
      via: 'jwt' as const,
    });
  }

  #fail(failure: JwtFailure, kid?: string, iss?: string): JwtOutcome {
    const d = failure === 'expired' ? this.#expired : failure === 'idp-unavailable' ? this.#unavailable : this.#invalid;
    return { deny: d, failure, kid, iss };
  }

  /** Number of verified tokens held (tests, metrics). */
  get cachedTokens(): number {
    return this.#cache.size;
  }
}

function failureOf(err: unknown): JwtFailure {
  if (err instanceof IdpUnavailable) return 'idp-unavailable';
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWKSNoMatchingKey) return 'unknown-kid';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'bad-signature';
  if (err instanceof errors.JWTClaimValidationFailed) return 'bad-claims';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed';
  return 'invalid';
}
