// The `authentication` section (and per-route `authenticate`) → AuthnPlan: static API keys in a
// digest-keyed Map, JWT issuers with their keys imported once, the per-route authenticator order
// and its AUTH_MISSING challenge, the identity headers to forward. Also `ipAllow`/`ipDeny`.
import { createPublicKey, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, type JWK } from 'jose';
import type { AuthMethod } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import type { Route } from '../core/route.js';
import { RESERVED_REQUEST_HEADERS } from '../header-names.js';
import { DEFAULT_IPV6_PREFIX } from '../ip-address.js';
import { compileKeyLimits } from '../limits/key-limits.js';
import { parseCidr } from '../policy/cidr.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { JwtIssuerSpec, PolicyDocument } from '../policy/schema.js';
import { parseDuration } from '../policy/values.js';
import { ApiKeyAuthenticator, type ApiKeyRecord, DEFAULT_API_KEY_HEADER, type KeyLookup, type KeyUses, type RevokedKeys, StaticKeyLookup } from './api-key.js';
import type { Authenticator } from './authenticator.js';
import { compileClaimPath, isSafeHeaderValue, isSafeListElement } from './claims.js';
import { TrustedProxies } from './client-ip.js';
import { EffectiveRoles, FORWARD_DEFAULTS, type IdentityForward } from './forward.js';
import { DEFAULT_IDENTITY_JWT_HEADER } from './identity-jwt.js';
import { IpRule } from './ip-rules.js';
import { jwksSource } from './jwks.js';
import { JwtAuthenticator, type JwtIssuer } from './jwt.js';
import { globPattern, MtlsAuthenticator, type MtlsRule } from './mtls.js';

/** A route that names no methods accepts every one the policy configures, in this order. */
const ALL_AUTH_METHODS: readonly AuthMethod[] = ['apiKey', 'jwt', 'mtls'];

declare module '../core/plan.js' {
  interface Plan {
    /** API keys, JWT issuers, per-route authenticators, forwarded identity, lockout. */
    readonly authn: AuthnPlan;
    /** Top-level and per-route ipAllow/ipDeny, and the trusted proxies. */
    readonly ipRules: IpRulesPlan;
  }
}

export interface RouteAuthn {
  /** The route's authenticators in the order it lists them (only configured ones). */
  readonly methods: readonly Authenticator[];
  /** AUTH_MISSING with a WWW-Authenticate challenge per accepted method. */
  readonly missing: Deny;
  /** The route accepts both an API key and a bearer token: a request carrying both is ambiguous. */
  readonly both: boolean;
}

export interface AuthnPlan {
  readonly apiKey: ApiKeyAuthenticator | undefined;
  readonly jwt: JwtAuthenticator | undefined;
  readonly mtls: MtlsAuthenticator | undefined;
  /** By route index; public routes have none. */
  readonly routes: ReadonlyMap<number, RouteAuthn>;
  readonly forward: IdentityForward;
  /**
   * What a 401 built without a challenge asks for: every configured method's challenge, or a Bearer
   * one when none is configured (RFC 9110: a 401 names how to authenticate).
   */
  readonly challenge: string;
  /** authentication.lockout: auth failures per client IP (undefined: off). */
  readonly lockout: LockoutPlan | undefined;
}

interface LockoutPlan {
  readonly failures: number;
  readonly windowMs: number;
  readonly durationMs: number;
  /** IPv6 clients are counted (and locked out) per network of this many leading bits. */
  readonly ipv6Prefix: number;
}

export interface IpRulesPlan {
  /** Top-level rule; undefined when there is none. */
  readonly global: IpRule | undefined;
  /** By route index, only routes that have rules. */
  readonly routes: ReadonlyMap<number, IpRule>;
  /** trustedProxies, compiled: who may tell us the client address (X-Forwarded-For). */
  readonly trusted: TrustedProxies;
}

type Path = (string | number)[];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const SIGNATURE_FAMILY: Record<string, string> = { RS: 'rsa', PS: 'rsa', ES: 'ec', Ed: 'okp', HS: 'secret' };
const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_CACHE_MAX_AGE_MS = 600_000;
const JWKS_TIMEOUT_MS = 5_000;

function headerName(value: string, at: Path, cx: CompileContext, identity = false): string {
  const name = value.toLowerCase();
  if (!TOKEN.test(value)) cx.error(at, `"${value}" is not a valid header name`);
  else if (identity && name.includes('_'))
    cx.error(at, `"${value}": write "-" instead of "_" (upstreams that read "_" and "-" as one character could not tell it from a client's "${name.replace(/_/g, '-')}")`);
  else if (RESERVED_REQUEST_HEADERS.has(name)) cx.error(at, `"${value}" is a reserved header and cannot be used here`);
  return name;
}

function parseExpires(value: string | Date, at: Path, cx: CompileContext): number | undefined {
  const ms = value instanceof Date ? value.getTime() : Date.parse(value);
  if (!Number.isFinite(ms)) cx.error(at, `"${String(value)}" is not a date (e.g. 2027-01-01 or 2027-01-01T00:00:00Z)`);
  return Number.isFinite(ms) ? ms : undefined;
}

function compileApiKeys(doc: PolicyDocument, cx: CompileContext, dynamic: (KeyLookup & RevokedKeys & Partial<KeyUses>) | undefined): ApiKeyAuthenticator | undefined {
  const spec = doc.authentication?.apiKeys;
  if (spec === undefined) return undefined;
  const at: Path = ['authentication', 'apiKeys'];
  const header = headerName(spec.header ?? DEFAULT_API_KEY_HEADER, [...at, 'header'], cx);
  const declaredRoles = new Set(Object.keys(doc.roles ?? {}));
  const byDigest = new Map<string, ApiKeyRecord>();
  const firstAt = new Map<string, number>();
  (spec.keys ?? []).forEach((k, i) => {
    const kat: Path = [...at, 'keys', i];
    const digest = k.hash.slice('sha256:'.length);
    const dup = firstAt.get(digest);
    if (dup !== undefined) cx.error([...kat, 'hash'], `this hash is also the hash of key "${spec.keys![dup]!.id}" (${cx.where([...at, 'keys', dup, 'hash'])})`);
    firstAt.set(digest, i);
    const subject = k.subject ?? k.id;
    if (!isSafeHeaderValue(subject)) cx.error([...kat, k.subject === undefined ? 'id' : 'subject'], 'must be visible ASCII (it is sent to the upstream in a header)');
    if (k.tenant !== undefined && !isSafeHeaderValue(k.tenant)) cx.error([...kat, 'tenant'], 'must be visible ASCII (it is sent to the upstream in a header)');
    (k.roles ?? []).forEach((r, j) => {
      if (!isSafeListElement(r)) cx.error([...kat, 'roles', j], 'a role name must be visible ASCII without spaces or commas');
      else if (!declaredRoles.has(r)) cx.warn([...kat, 'roles', j], `role "${r}" is not declared under roles`);
    });
    const expiresAt = k.expires === undefined ? undefined : parseExpires(k.expires, [...kat, 'expires'], cx);
    if (k.limits?.burst !== undefined && k.limits.rate === undefined) cx.error([...kat, 'limits', 'burst'], 'burst needs a rate');
    const limits = compileKeyLimits(k.limits);
    byDigest.set(digest, {
      id: k.id,
      principal: Object.freeze({
        subject,
        tenant: k.tenant,
        roles: Object.freeze([...(k.roles ?? [])]),
        permissions: Object.freeze([...(k.permissions ?? [])]),
        keyId: k.id,
        via: 'apiKey' as const,
        ...(limits === undefined ? {} : { limits }),
      }),
      expiresAt,
      disabled: k.disabled === true,
    });
  });
  const uses = dynamic?.used === undefined ? undefined : (dynamic as KeyUses);
  return new ApiKeyAuthenticator(header, dynamic ? [new StaticKeyLookup(byDigest, dynamic), dynamic] : [new StaticKeyLookup(byDigest)], uses);
}

function familyOf(alg: string): string {
  return SIGNATURE_FAMILY[alg.slice(0, 2)] ?? 'unknown';
}

function keyFamily(key: KeyObject): string {
  const t = key.asymmetricKeyType;
  return t === 'rsa' || t === 'rsa-pss' ? 'rsa' : t === 'ec' ? 'ec' : t === 'ed25519' || t === 'ed448' ? 'okp' : String(t);
}

function issuerKey(spec: JwtIssuerSpec, at: Path, cx: CompileContext): JwtIssuer['key'] | undefined {
  const sources = [spec.jwksUrl, spec.publicKey, spec.secret].filter((v) => v !== undefined).length;
  if (sources !== 1) {
    cx.error(at, 'give exactly one of jwksUrl, publicKey or secret');
    return undefined;
  }
  const families = new Set(spec.algorithms.map(familyOf));
  if (spec.secret !== undefined) {
    if (families.size !== 1 || !families.has('secret')) cx.error([...at, 'algorithms'], 'a secret verifies only HS256/HS384/HS512');
    const bytes = new TextEncoder().encode(spec.secret);
    if (bytes.length < 32) cx.warn([...at, 'secret'], `the secret is ${bytes.length} bytes; use at least 32 random bytes`);
    return bytes;
  }
  if (families.has('secret')) {
    cx.error([...at, 'algorithms'], 'HS* algorithms need a secret; with public keys they would let a public key be used as an HMAC secret');
    return undefined;
  }
  if (spec.jwksUrl !== undefined) {
    const cooldownMs = spec.cooldown !== undefined ? parseDuration(spec.cooldown) : DEFAULT_COOLDOWN_MS;
    const cacheMaxAgeMs = spec.cacheMaxAge !== undefined ? parseDuration(spec.cacheMaxAge) : DEFAULT_CACHE_MAX_AGE_MS;
    return jwksSource(spec.jwksUrl, { cooldownMs, cacheMaxAgeMs, timeoutMs: JWKS_TIMEOUT_MS, issuer: spec.name }).getKey;
  }
  const text = spec.publicKey!.trim();
  try {
    if (text.startsWith('{')) {
      const parsed = JSON.parse(text) as { keys?: JWK[] } & JWK;
      if (Array.isArray(parsed.keys)) return createLocalJWKSet({ keys: parsed.keys });
      if (parsed.d !== undefined) cx.error([...at, 'publicKey'], 'this JWK is a private key; give the public key');
      const key = createPublicKey({ key: parsed as import('node:crypto').JsonWebKey, format: 'jwk' });
      checkKeyFamily(key, families, at, cx);
      return key;
    }
    if (/PRIVATE KEY-----/.test(text)) cx.error([...at, 'publicKey'], 'this PEM is a private key; give the public key');
    const key = createPublicKey(text);
    checkKeyFamily(key, families, at, cx);
    return key;
  } catch (err) {
    cx.error([...at, 'publicKey'], `not a PEM public key, certificate or JWK: ${(err as Error).message}`);
    return undefined;
  }
}

function checkKeyFamily(key: KeyObject, families: Set<string>, at: Path, cx: CompileContext): void {
  const family = keyFamily(key);
  for (const f of families) if (f !== family) cx.error([...at, 'algorithms'], `the public key is ${family.toUpperCase()}; it cannot verify every listed algorithm`);
}

function compileJwt(doc: PolicyDocument, cx: CompileContext): JwtAuthenticator | undefined {
  const specs = doc.authentication?.jwt;
  if (specs === undefined || specs.length === 0) return undefined;
  const issuers: JwtIssuer[] = [];
  const seen = new Map<string, number>();
  specs.forEach((spec, i) => {
    const at: Path = ['authentication', 'jwt', i];
    const dup = seen.get(spec.issuer);
    if (dup !== undefined) cx.error([...at, 'issuer'], `issuer "${spec.issuer}" is already configured (${cx.where(['authentication', 'jwt', dup, 'issuer'])})`);
    seen.set(spec.issuer, i);
    const key = issuerKey(spec, at, cx);
    if (key === undefined) return;
    const claims = spec.claims ?? {};
    issuers.push({
      name: spec.name,
      issuer: spec.issuer,
      audience: spec.audience,
      algorithms: spec.algorithms,
      clockToleranceSec: spec.clockTolerance !== undefined ? parseDuration(spec.clockTolerance) / 1000 : 0,
      typ: spec.typ,
      key,
      claims: {
        subject: compileClaimPath(claims.subject ?? 'sub'),
        tenant: claims.tenant !== undefined ? compileClaimPath(claims.tenant) : undefined,
        roles: claims.roles !== undefined ? compileClaimPath(claims.roles) : undefined,
        permissions: claims.permissions !== undefined ? compileClaimPath(claims.permissions) : undefined,
      },
    });
  });
  return new JwtAuthenticator(issuers);
}

function compileForward(doc: PolicyDocument, apiKey: ApiKeyAuthenticator | undefined, cx: CompileContext): IdentityForward {
  const spec = doc.authentication?.forward ?? {};
  const at: Path = ['authentication', 'forward'];
  const names = {
    subject: headerName(spec.subject ?? FORWARD_DEFAULTS.subject, [...at, 'subject'], cx, true),
    tenant: headerName(spec.tenant ?? FORWARD_DEFAULTS.tenant, [...at, 'tenant'], cx, true),
    roles: headerName(spec.roles ?? FORWARD_DEFAULTS.roles, [...at, 'roles'], cx, true),
    keyId: headerName(spec.keyId ?? FORWARD_DEFAULTS.keyId, [...at, 'keyId'], cx, true),
    issuer: headerName(spec.issuer ?? FORWARD_DEFAULTS.issuer, [...at, 'issuer'], cx, true),
  };
  const strip = new Set(Object.values(names));
  if (strip.size !== Object.keys(names).length) cx.error(at, `the forward headers must have ${Object.keys(names).length} different names`);
  if (spec.jwt !== undefined) {
    // Signed identity (identity-jwt.ts): a client's copy of its header is removed like the others.
    const identityJwt = headerName(spec.jwt.header ?? DEFAULT_IDENTITY_JWT_HEADER, [...at, 'jwt', 'header'], cx, true);
    if (strip.has(identityJwt) || identityJwt === apiKey?.header) cx.error([...at, 'jwt', 'header'], `"${identityJwt}" is already used by another identity or credential header`);
    strip.add(identityJwt);
  }
  if (apiKey !== undefined && strip.has(apiKey.header)) cx.error(at, `the API key header "${apiKey.header}" cannot also be an identity header`);
  // The default names stay the gateway's when renamed (an upstream may still read them), and an
  // upstream that verifies signed identity must never get a client's token, configured here or not.
  for (const n of [...Object.values(FORWARD_DEFAULTS), DEFAULT_IDENTITY_JWT_HEADER]) if (n !== apiKey?.header) strip.add(n);
  if (doc.authentication?.forwardCredentials !== true) {
    strip.add('authorization');
    if (apiKey !== undefined) strip.add(apiKey.header);
  }
  return { ...names, strip, effectiveRoles: new EffectiveRoles(doc.roles ?? {}) };
}

/** A glob that would match every certificate, or none the CA could sign, is a mistake worth stopping for. */
function checkGlob(glob: string, kind: 'uri' | 'dns', at: Path, cx: CompileContext): void {
  if (glob.includes('***')) cx.error(at, `"${glob}": write * for one ${kind === 'uri' ? 'path segment' : 'label'}${kind === 'uri' ? ' or ** for any run' : ''}`);
  else if (kind === 'dns' && glob.includes('**')) cx.error(at, `"${glob}": a DNS glob has only *, one label`);
  else if (/^\*+$/.test(glob)) cx.error(at, `"${glob}" would match every certificate the client CA signs; name the trust domain or zone`);
  else if (kind === 'uri' && !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(glob)) cx.error(at, `"${glob}" is not a URI (expected a scheme such as spiffe://)`);
}

function compileMtls(doc: PolicyDocument, cx: CompileContext): MtlsAuthenticator | undefined {
  const specs = doc.authentication?.mtls;
  if (specs === undefined || specs.length === 0) return undefined;
  const declaredRoles = new Set(Object.keys(doc.roles ?? {}));
  const seen = new Map<string, number>();
  const rules: MtlsRule[] = specs.map((spec, i) => {
    const at: Path = ['authentication', 'mtls', i];
    const dup = seen.get(spec.name);
    if (dup !== undefined) cx.error([...at, 'name'], `rule "${spec.name}" is already defined (${cx.where(['authentication', 'mtls', dup, 'name'])})`);
    seen.set(spec.name, i);
    const kind = 'uri' in spec.match ? 'uri' : 'dns';
    const glob = 'uri' in spec.match ? spec.match.uri : spec.match.dns;
    checkGlob(glob, kind, [...at, 'match', kind], cx);
    if (spec.tenant !== undefined && !isSafeHeaderValue(spec.tenant)) cx.error([...at, 'tenant'], 'must be visible ASCII (it is sent to the upstream in a header)');
    (spec.roles ?? []).forEach((r, j) => {
      if (!isSafeListElement(r)) cx.error([...at, 'roles', j], 'a role name must be visible ASCII without spaces or commas');
      else if (!declaredRoles.has(r)) cx.warn([...at, 'roles', j], `role "${r}" is not declared under roles`);
    });
    return {
      name: spec.name,
      kind,
      pattern: globPattern(glob, kind),
      subject: spec.subject ?? kind,
      tenant: spec.tenant,
      roles: Object.freeze([...(spec.roles ?? [])]),
      permissions: Object.freeze([...(spec.permissions ?? [])]),
    };
  });
  return new MtlsAuthenticator(rules);
}

const challengesOf = (methods: readonly Authenticator[]): string => methods.map((m) => m.challenge).join(', ');
const DEFAULT_CHALLENGE = 'Bearer realm="portcullis"';

function challengeOf(methods: readonly Authenticator[]): Deny {
  return deny('AUTH_MISSING', undefined, methods.length === 0 ? undefined : { 'www-authenticate': challengesOf(methods) });
}

/**
 * `authentication` and each route's `authenticate`. `dynamicKeys` (admin-created keys, looked up
 * after the policy's own) joins every API-key authenticator.
 */
export function compileAuthn(doc: PolicyDocument, cx: CompileContext, routes: readonly Route[], dynamicKeys?: KeyLookup & RevokedKeys): AuthnPlan {
  const apiKey = compileApiKeys(doc, cx, dynamicKeys);
  const jwt = compileJwt(doc, cx);
  const mtls = compileMtls(doc, cx);
  const byMethod: Record<AuthMethod, Authenticator | undefined> = { apiKey, jwt, mtls };
  const perRoute = new Map<number, RouteAuthn>();
  for (const route of routes) {
    if (route.public) continue;
    const written = doc.routes?.[route.index]?.authenticate;
    const explicit = written !== undefined;
    const methods: Authenticator[] = [];
    (written ?? ALL_AUTH_METHODS).forEach((m, j) => {
      const a = byMethod[m];
      if (a !== undefined) methods.push(a);
      else if (explicit) cx.error(['routes', route.index, 'authenticate', j], `${m} is not configured under authentication`);
    });
    // Explicit names were refused one by one above. A route that takes every method but has none
    // configured would answer each request 401, with no challenge a client could meet.
    if (methods.length === 0 && !explicit) {
      const spec = doc.routes?.[route.index];
      const at: Path = ['routes', route.index, ...(spec?.require !== undefined ? ['require'] : spec?.tenantParam !== undefined ? ['tenantParam'] : [])];
      cx.error(
        at,
        `route "${route.name}" needs credentials, but no authentication method is configured: add authentication.apiKeys (static keys, or {} for keys created through the admin API), authentication.jwt or authentication.mtls, or mark the route public: true`,
      );
    }
    perRoute.set(route.index, { methods, missing: challengeOf(methods), both: methods.some((m) => m.method === 'apiKey') && methods.some((m) => m.method === 'jwt') });
  }
  return {
    apiKey,
    jwt,
    mtls,
    routes: perRoute,
    forward: compileForward(doc, apiKey, cx),
    challenge: challengesOf([apiKey, jwt, mtls].filter((m) => m !== undefined)) || DEFAULT_CHALLENGE,
    lockout: compileLockout(doc),
  };
}

function compileLockout(doc: PolicyDocument): LockoutPlan | undefined {
  const l = doc.authentication?.lockout;
  if (l === undefined) return undefined;
  return { failures: l.failures, windowMs: parseDuration(l.window), durationMs: parseDuration(l.duration), ipv6Prefix: l.ipv6Prefix ?? DEFAULT_IPV6_PREFIX };
}

/** Every CIDR of `trustedProxies`, `ipAllow` and `ipDeny`, top-level and per route; returns the trusted proxies that parsed. */
function checkCidrs(doc: PolicyDocument, cx: CompileContext): string[] {
  const check = (list: readonly string[] | undefined, at: (string | number)[]): string[] => {
    const ok: string[] = [];
    list?.forEach((value, i) => {
      const c = parseCidr(value);
      if (typeof c === 'string') cx.error([...at, i], c);
      else ok.push(value);
    });
    return ok;
  };
  check(doc.ipAllow, ['ipAllow']);
  check(doc.ipDeny, ['ipDeny']);
  doc.routes?.forEach((r, i) => {
    check(r.ipAllow, ['routes', i, 'ipAllow']);
    check(r.ipDeny, ['routes', i, 'ipDeny']);
  });
  return check(doc.trustedProxies, ['trustedProxies']);
}

/** Top-level and per-route ipAllow/ipDeny, and trustedProxies. */
export function compileIpRules(doc: PolicyDocument, cx: CompileContext, routes: readonly Route[]): IpRulesPlan {
  const trustedProxies = checkCidrs(doc, cx);
  const global = new IpRule(doc.ipAllow ?? [], doc.ipDeny ?? []);
  const perRoute = new Map<number, IpRule>();
  for (const route of routes) {
    const spec = doc.routes?.[route.index];
    const rule = new IpRule(spec?.ipAllow ?? [], spec?.ipDeny ?? []);
    if (!rule.empty) perRoute.set(route.index, rule);
  }
  return { global: global.empty ? undefined : global, routes: perRoute, trusted: new TrustedProxies(trustedProxies) };
}
