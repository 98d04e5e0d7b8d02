// Signed identity for the upstream (`authentication.forward.jwt`): a short-lived JWT carrying the
// principal, so an upstream can verify who the caller is (against the JWKS on the admin listener)
// instead of trusting plain headers. Signing is asynchronous (jose) and costs tens of microseconds,
// so tokens are cached per principal: a request normally gets a cached string synchronously; a token
// past half its lifetime is re-signed in the background, and none is handed out with less than a
// quarter of its lifetime left.
import { createHash, createPrivateKey, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';
import { LRUCache } from 'lru-cache';
import type { Principal } from '../core/principal.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { parseDuration } from '../policy/values.js';

declare module '../core/plan.js' {
  interface Plan {
    /** `authentication.forward.jwt`: signs the identity token forwarded to upstreams (undefined: off). */
    readonly identityJwt: IdentityJwtSigner | undefined;
  }
}

const IDENTITY_JWT_ISSUER = 'portcullis';
export const DEFAULT_IDENTITY_JWT_HEADER = 'x-auth-jwt';
const DEFAULT_TTL_MS = 60_000;
const MIN_TTL_MS = 5_000;
const MAX_TTL_MS = 3_600_000;
/** Distinct principals whose tokens are kept; beyond it the least recently used is re-signed on demand. */
const CACHE_MAX = 10_000;

export type IdentityJwtAlgorithm = 'EdDSA' | 'ES256';

/** The public half, as published at /.well-known/jwks.json. */
export interface IdentityJwk {
  readonly kty: string;
  readonly crv: string;
  readonly x: string;
  readonly y?: string;
  readonly kid: string;
  readonly alg: IdentityJwtAlgorithm;
  readonly use: 'sig';
}

export interface IdentityJwtOptions {
  /** PKCS#8 (or SEC1 for P-256) PEM of an Ed25519 or P-256 private key. */
  readonly privateKeyPem: string;
  readonly ttlMs?: number | undefined;
  readonly audience?: string | undefined;
  readonly header?: string | undefined;
}

interface CacheEntry {
  readonly token: string;
  /** After this a background re-sign starts. */
  readonly refreshAt: number;
  /** After this the token is not handed out any more. */
  readonly staleAt: number;
}

/** RFC 7638 thumbprint: sha256 over the required members in lexicographic order. */
function thumbprint(jwk: JsonWebKey): string {
  const members = jwk.kty === 'OKP' ? { crv: jwk.crv, kty: jwk.kty, x: jwk.x } : { crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y };
  return createHash('sha256').update(JSON.stringify(members)).digest('base64url');
}

function algorithmOf(key: KeyObject): IdentityJwtAlgorithm | undefined {
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') return 'ES256';
  return undefined;
}

const cacheKey = (p: Principal): string => JSON.stringify([p.via, p.subject, p.tenant ?? null, p.keyId ?? null, p.issuer ?? null, p.roles, p.permissions]);

export class IdentityJwtSigner {
  readonly #key: KeyObject;
  readonly #alg: IdentityJwtAlgorithm;
  readonly #jwk: IdentityJwk;
  readonly #ttlMs: number;
  readonly #audience: string | undefined;
  readonly #header: string;
  readonly #cache = new LRUCache<string, CacheEntry>({ max: CACHE_MAX });
  readonly #pending = new Map<string, Promise<string>>();

  /** Throws with a readable message when the key is not a usable Ed25519 / P-256 private key. */
  constructor(options: IdentityJwtOptions) {
    let key: KeyObject;
    try {
      key = createPrivateKey(options.privateKeyPem);
    } catch {
      throw new Error('not a PEM private key (expected an Ed25519 or P-256 key, e.g. `openssl genpkey -algorithm ed25519`)');
    }
    const alg = algorithmOf(key);
    if (!alg) throw new Error(`unsupported key type ${key.asymmetricKeyType ?? 'unknown'}: use an Ed25519 (EdDSA) or P-256 (ES256) private key`);
    const pub = createPublicKey(key).export({ format: 'jwk' });
    this.#key = key;
    this.#alg = alg;
    this.#jwk = Object.freeze({ kty: pub.kty!, crv: pub.crv!, x: pub.x!, ...(pub.y ? { y: pub.y } : {}), kid: thumbprint(pub), alg, use: 'sig' as const });
    this.#ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.#audience = options.audience;
    this.#header = (options.header ?? DEFAULT_IDENTITY_JWT_HEADER).toLowerCase();
  }

  /** The request header the token travels in (lower case). */
  get header(): string {
    return this.#header;
  }

  get algorithm(): IdentityJwtAlgorithm {
    return this.#alg;
  }

  get jwks(): { keys: readonly IdentityJwk[] } {
    return { keys: [this.#jwk] };
  }

  /**
   * A token for this principal: a cached string when one is fresh enough, else a promise of a new
   * one. `roles` is the principal's effective roles (what the roles header carries); the cache is
   * keyed by the principal's own roles, from which the effective ones follow within one policy.
   */
  token(principal: Principal, now: number = Date.now(), roles: readonly string[] = principal.roles): string | Promise<string> {
    const key = cacheKey(principal);
    const entry = this.#cache.get(key);
    if (entry && now < entry.staleAt) {
      if (now >= entry.refreshAt && !this.#pending.has(key)) void this.#sign(key, principal, roles).catch(() => undefined);
      return entry.token;
    }
    return this.#pending.get(key) ?? this.#sign(key, principal, roles);
  }

  #sign(key: string, p: Principal, roles: readonly string[]): Promise<string> {
    const issuedAt = Date.now();
    const iat = Math.floor(issuedAt / 1000);
    const exp = iat + Math.max(1, Math.floor(this.#ttlMs / 1000));
    // The same facts as the identity headers, one meaning each: key_id only for an API key, idp only for a JWT issuer.
    const claims: Record<string, unknown> = { roles, via: p.via };
    if (p.tenant !== undefined) claims.tenant = p.tenant;
    if (p.keyId !== undefined) claims.key_id = p.keyId;
    if (p.issuer !== undefined) claims.idp = p.issuer;
    if (p.permissions.length > 0) claims.permissions = p.permissions;
    const jwt = new SignJWT(claims).setProtectedHeader({ alg: this.#alg, kid: this.#jwk.kid, typ: 'JWT' }).setIssuer(IDENTITY_JWT_ISSUER).setSubject(p.subject).setIssuedAt(iat).setExpirationTime(exp);
    if (this.#audience !== undefined) jwt.setAudience(this.#audience);
    const lifetime = exp * 1000 - issuedAt;
    const signing = jwt
      .sign(this.#key)
      .then((token) => {
        this.#cache.set(key, { token, refreshAt: issuedAt + lifetime / 2, staleAt: issuedAt + (lifetime * 3) / 4 });
        return token;
      })
      .finally(() => this.#pending.delete(key));
    this.#pending.set(key, signing);
    return signing;
  }
}

/** `authentication.forward.jwt` → a signer, or undefined when not configured (errors go to cx). */
export function compileIdentityJwt(doc: PolicyDocument, cx: CompileContext): IdentityJwtSigner | undefined {
  const spec = doc.authentication?.forward?.jwt;
  if (!spec) return undefined;
  const at = ['authentication', 'forward', 'jwt'];
  let ttlMs = DEFAULT_TTL_MS;
  if (spec.ttl !== undefined) {
    ttlMs = parseDuration(spec.ttl);
    if (ttlMs < MIN_TTL_MS || ttlMs > MAX_TTL_MS) {
      cx.error([...at, 'ttl'], `a forwarded identity token lives between 5s and 1h (got ${spec.ttl})`);
      return undefined;
    }
  }
  if (!spec.key.includes('-----BEGIN')) {
    cx.error([...at, 'key'], 'expected a PEM private key; write it as file:path/to/key.pem (secrets are never inline)');
    return undefined;
  }
  try {
    return new IdentityJwtSigner({ privateKeyPem: spec.key, ttlMs, audience: spec.audience, header: spec.header });
  } catch (err) {
    cx.error([...at, 'key'], (err as Error).message);
    return undefined;
  }
}
