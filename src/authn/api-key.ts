// API keys: the configured header only, looked up by sha256 digest (a Map get: no scan, no string
// comparison of secrets). Unknown, disabled, expired and malformed keys all get the very same Deny
// object, so their 401 bodies are byte-identical apart from the request id.
import { randomBytes } from 'node:crypto';
import type { Principal } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { firstHeader } from '../request-headers.js';
import { sha256Hex } from '../sha256.js';
import { type Authenticator, type AuthOutcome, NOT_MINE } from './authenticator.js';

export const DEFAULT_API_KEY_HEADER = 'x-api-key';
/** Keys Portcullis generates start with this: recognisable in a leak scan. */
const KEY_PREFIX = 'pcs_';

/** 32 random bytes, base64url: 256 bits of entropy behind a recognisable prefix. */
export function generateApiKey(): string {
  return `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}
/** Longer presented values are refused before hashing (a header this long is not one of our keys). */
const MAX_API_KEY_LENGTH = 512;

/** A key as the lookup knows it: only its digest is ever stored. */
export interface ApiKeyRecord {
  readonly id: string;
  readonly principal: Principal;
  /** Epoch ms; undefined: never expires. */
  readonly expiresAt: number | undefined;
  readonly disabled: boolean;
}

/**
 * Where keys are found by the hex sha256 digest of the presented value. The static keys of the
 * policy are one; dynamic keys created through the admin API are another, backed by
 * the store (hence the optional promise).
 */
export interface KeyLookup {
  lookup(digestHex: string): ApiKeyRecord | undefined | Promise<ApiKeyRecord | undefined>;
}

/** Told of every accepted key: keeps its last use (throttled, off the request path). */
export interface KeyUses {
  used(keyId: string, now: number): void;
}

/** Digests of static keys disabled at runtime (`DELETE /admin/keys/:id`), kept outside the policy. */
export interface RevokedKeys {
  has(digestHex: string): boolean;
}

export class StaticKeyLookup implements KeyLookup {
  readonly #byDigest: Map<string, ApiKeyRecord>;
  readonly #revoked: RevokedKeys | undefined;
  /** The disabled twin of each revoked record, built once. */
  readonly #disabled = new WeakMap<ApiKeyRecord, ApiKeyRecord>();
  constructor(byDigest: Map<string, ApiKeyRecord>, revoked?: RevokedKeys) {
    this.#byDigest = byDigest;
    this.#revoked = revoked;
  }
  lookup(digestHex: string): ApiKeyRecord | undefined {
    const record = this.#byDigest.get(digestHex);
    if (record === undefined || this.#revoked === undefined || !this.#revoked.has(digestHex)) return record;
    // Found and refused here: a revoked static key must not fall through to the dynamic lookup.
    let off = this.#disabled.get(record);
    if (off === undefined) this.#disabled.set(record, (off = Object.freeze({ ...record, disabled: true })));
    return off;
  }
  get size(): number {
    return this.#byDigest.size;
  }
}

/** Why a key was refused; logged (never the key), never shown to the client. */
type ApiKeyFailure = 'malformed' | 'unknown' | 'disabled' | 'expired';

export interface ApiKeyOutcome extends AuthOutcome {
  readonly failure?: ApiKeyFailure;
}

const DIGEST_MEMO_SIZE = 10_000;
// Visible ASCII only: anything else cannot be one of our keys (and must not reach a log line).
const KEY_SHAPE = /^[\x21-\x7e]+$/;

export class ApiKeyAuthenticator implements Authenticator {
  readonly method = 'apiKey' as const;
  /** Lower-case header name. */
  readonly header: string;
  readonly challenge: string;
  readonly #lookups: readonly KeyLookup[];
  readonly #invalid: Deny;
  readonly #malformed: ApiKeyOutcome;
  readonly #unknown: ApiKeyOutcome;
  /** Presented value → digest, for issued keys only (see #remember). */
  readonly #digests = new Map<string, string>();
  /** The success outcome of each key record, built once (records are long-lived and immutable). */
  readonly #accepted = new WeakMap<ApiKeyRecord, ApiKeyOutcome>();
  readonly #uses: KeyUses | undefined;

  constructor(header: string, lookups: readonly KeyLookup[], uses?: KeyUses) {
    this.header = header.toLowerCase();
    this.#lookups = lookups;
    this.#uses = uses;
    this.challenge = `ApiKey header="${this.header}"`;
    this.#invalid = deny('AUTH_INVALID', undefined, { 'www-authenticate': this.challenge });
    this.#malformed = Object.freeze({ deny: this.#invalid, failure: 'malformed' as const });
    this.#unknown = Object.freeze({ deny: this.#invalid, failure: 'unknown' as const });
  }

  authenticate(rawHeaders: readonly string[]): ApiKeyOutcome | Promise<ApiKeyOutcome> | typeof NOT_MINE {
    const value = firstHeader(rawHeaders, this.header); // a repeated key header was refused (400) before
    if (value === undefined) return NOT_MINE;
    if (value.length === 0 || value.length > MAX_API_KEY_LENGTH || !KEY_SHAPE.test(value)) return this.#malformed;
    const known = this.#digests.get(value);
    return this.#find(known ?? sha256Hex(value), 0, Date.now(), known === undefined ? value : undefined);
  }

  /** `remember`: the presented value, to memoise its digest once a lookup knows the key. */
  #find(digest: string, from: number, now: number, remember: string | undefined): ApiKeyOutcome | Promise<ApiKeyOutcome> {
    for (let i = from; i < this.#lookups.length; i++) {
      const found = this.#lookups[i]!.lookup(digest);
      if (found === undefined) continue;
      if (found instanceof Promise) {
        return found.then((record) => (record === undefined ? this.#find(digest, i + 1, now, remember) : this.#judge(this.#remember(remember, digest, record), now)));
      }
      return this.#judge(this.#remember(remember, digest, found), now);
    }
    return this.#unknown;
  }

  /**
   * Memoises the digest of a presented value that names an issued key (never of an unknown value:
   * guesses are not kept). The lookup still runs by digest on every request, so revocation, expiry
   * and disabling take effect at once; only the sha256 is saved, a few µs per request.
   */
  #remember(value: string | undefined, digest: string, record: ApiKeyRecord): ApiKeyRecord {
    if (value !== undefined) {
      // Bounded: a flood of distinct issued keys only empties the memo, it never grows past the cap.
      if (this.#digests.size >= DIGEST_MEMO_SIZE) this.#digests.clear();
      this.#digests.set(value, digest);
    }
    return record;
  }

  #judge(record: ApiKeyRecord, now: number): ApiKeyOutcome {
    if (record.disabled) return { deny: this.#invalid, failure: 'disabled', keyId: record.id };
    if (record.expiresAt !== undefined && now >= record.expiresAt) return { deny: this.#invalid, failure: 'expired', keyId: record.id };
    let ok = this.#accepted.get(record);
    if (ok === undefined) this.#accepted.set(record, (ok = Object.freeze({ principal: record.principal, keyId: record.id })));
    this.#uses?.used(record.id, now);
    return ok;
  }
}

/** `sha256:<hex>` as written in policies and printed by `portcullis keys`. */
export function hashApiKey(key: string): string {
  return `sha256:${sha256Hex(key)}`;
}
