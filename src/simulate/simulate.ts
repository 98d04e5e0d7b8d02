// One request, decided offline by the REAL compiled Plan through the same engine entry as the
// proxy (`prepare`, then `decide` in the `policy` scope: route → ipRules → lockout → authenticate
// → authorize; limits, breaker and forwarding need a store and an upstream and are not policy
// decisions). Used by `portcullis test` and `explain`. Nothing here re-implements a rule: identity is produced by presenting a credential
// to the real authenticate stage. A test principal (`as:`) or a named static key (`apiKey:`) is a
// freshly minted random API key whose digest maps to that principal; a `jwt:` is signed by a
// per-run test key that stands in for the policy's issuers (same issuer, audience, claim mapping);
// a `clientCert:` is a connection that completed a handshake with a certificate of those names.
import { createHash, generateKeyPairSync, type KeyObject, randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { ApiKeyAuthenticator, type ApiKeyRecord, DEFAULT_API_KEY_HEADER, StaticKeyLookup } from '../authn/api-key.js';
import type { Authenticator } from '../authn/authenticator.js';
import { compileClaimPath } from '../authn/claims.js';
import type { AuthnPlan, RouteAuthn } from '../authn/compile.js';
import { JwtAuthenticator, type JwtIssuer } from '../authn/jwt.js';
import { RequestContext, type TraceStep } from '../core/context.js';
import type { Plan } from '../core/plan.js';
import type { Principal } from '../core/principal.js';
import { type Deny, REASONS, type ReasonCode } from '../core/reasons.js';
import { isAnswer } from '../core/stage.js';
import { Engine } from '../engine/engine.js';
import { MemoryStore } from '../limits/memory-store.js';
import type { RouteAttempt } from '../routing/route.js';

export type Identity =
  | {
      readonly as: {
        readonly tenant?: string | undefined;
        readonly roles?: readonly string[] | undefined;
        readonly permissions?: readonly string[] | undefined;
        readonly subject?: string | undefined;
        readonly claims?: Readonly<Record<string, unknown>> | undefined;
      };
    }
  | { readonly apiKey: string }
  | { readonly jwt: { readonly claims: Readonly<Record<string, unknown>> } }
  | { readonly clientCert: ClientCertificate };

/** A verified client certificate's names, as the handshake would have presented them to `mtls`. */
interface ClientCertificate {
  readonly uri?: string | undefined;
  readonly dns?: string | undefined;
  readonly cn?: string | undefined;
}

/**
 * A connection that completed a TLS handshake with this certificate: what the real `mtls`
 * authenticator reads of a TLS socket, so the policy's own rules map it.
 */
function verifiedConnection(c: ClientCertificate): object {
  const san = [c.uri === undefined ? undefined : `URI:${c.uri}`, c.dns === undefined ? undefined : `DNS:${c.dns}`].filter((v) => v !== undefined).join(', ');
  const cert = { subject: c.cn === undefined ? {} : { CN: c.cn }, subjectaltname: san };
  return { authorized: true, getPeerCertificate: () => cert };
}

export interface SimRequest {
  readonly method: string;
  readonly path: string;
  readonly host?: string | undefined;
  /** Client address the IP rules see (default 127.0.0.1). */
  readonly ip?: string | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly identity?: Identity | undefined;
}

export interface SimResult {
  readonly decision: 'allow' | ReasonCode;
  readonly status: number;
  readonly deny: Deny | undefined;
  readonly canonicalPath: string | undefined;
  readonly attempts: readonly RouteAttempt[];
  readonly route: string | undefined;
  readonly roles: readonly string[];
  readonly principal: Principal | undefined;
  readonly shadowDecision: string | undefined;
  readonly trace: readonly TraceStep[];
}

/** Thrown for a test that cannot be set up (unknown key id, no JWT issuer): a usage problem, not a decision. */
export class SimulationError extends Error {
  override readonly name = 'SimulationError';
}

function mintedKey(header: string, record: Omit<ApiKeyRecord, 'id'> & { id: string }): { auth: ApiKeyAuthenticator; key: string } {
  const key = `pct_${randomBytes(24).toString('base64url')}`;
  const digest = createHash('sha256').update(key).digest('hex');
  return { auth: new ApiKeyAuthenticator(header, [new StaticKeyLookup(new Map([[digest, record]]))]), key };
}

/** A Plan identical to `plan` except that the routes' authenticators of one kind are replaced. */
function withAuthenticator(plan: Plan, auth: Authenticator, everywhere: boolean): Plan {
  const authn = plan.authn;
  if (authn === undefined) return plan;
  const routes = new Map<number, RouteAuthn>();
  for (const [index, ra] of authn.routes) {
    const methods = everywhere ? [auth] : ra.methods.map((m) => (m.method === auth.method ? auth : m));
    routes.set(index, { ...ra, methods });
  }
  const swapped: AuthnPlan = { ...authn, routes, ...(auth instanceof ApiKeyAuthenticator && !everywhere ? { apiKey: auth } : {}) };
  return { ...plan, authn: swapped };
}

let testKey: { privateKey: KeyObject; publicKey: KeyObject } | undefined;

async function jwtIdentity(plan: Plan, claims: Readonly<Record<string, unknown>>): Promise<{ auth: JwtAuthenticator; token: string }> {
  const specs = plan.document.authentication?.jwt ?? [];
  if (specs.length === 0) throw new SimulationError('the policy configures no JWT issuer (authentication.jwt)');
  const keys = (testKey ??= generateKeyPairSync('ec', { namedCurve: 'P-256' }));
  const issuers: JwtIssuer[] = specs.map((s) => ({
    name: s.name,
    issuer: s.issuer,
    audience: s.audience,
    algorithms: ['ES256'],
    clockToleranceSec: 0,
    typ: undefined,
    key: keys.publicKey,
    claims: {
      subject: compileClaimPath(s.claims?.subject ?? 'sub'),
      tenant: s.claims?.tenant !== undefined ? compileClaimPath(s.claims.tenant) : undefined,
      roles: s.claims?.roles !== undefined ? compileClaimPath(s.claims.roles) : undefined,
      permissions: s.claims?.permissions !== undefined ? compileClaimPath(s.claims.permissions) : undefined,
    },
  }));
  const first = specs[0]!;
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    sub: 'test-subject',
    iss: first.issuer,
    ...(first.audience === undefined ? {} : { aud: Array.isArray(first.audience) ? first.audience[0]! : first.audience }),
    iat: now,
    exp: now + 300,
    ...claims,
  };
  const token = await new SignJWT(payload).setProtectedHeader({ alg: 'ES256' }).sign(keys.privateKey);
  return { auth: new JwtAuthenticator(issuers), token };
}

function keyRecord(plan: Plan, id: string): ApiKeyRecord {
  const keys = plan.document.authentication?.apiKeys?.keys ?? [];
  const k = keys.find((x) => x.id === id);
  if (k === undefined) throw new SimulationError(`no API key with id "${id}" under authentication.apiKeys.keys`);
  const expires = k.expires === undefined ? undefined : k.expires instanceof Date ? k.expires.getTime() : Date.parse(k.expires);
  return {
    id: k.id,
    principal: Object.freeze({
      subject: k.subject ?? k.id,
      tenant: k.tenant,
      roles: Object.freeze([...(k.roles ?? [])]),
      permissions: Object.freeze([...(k.permissions ?? [])]),
      keyId: k.id,
      via: 'apiKey' as const,
    }),
    expiresAt: expires,
    disabled: k.disabled === true,
  };
}

/** The plan to decide with and the credential headers (or the connection) that present `identity` to it. */
async function present(plan: Plan, identity: Identity | undefined): Promise<{ plan: Plan; headers: Record<string, string>; connection?: object }> {
  if (identity === undefined) return { plan, headers: {} };
  if ('clientCert' in identity) {
    if (plan.authn?.mtls === undefined) throw new SimulationError('the policy configures no client certificates (authentication.mtls)');
    return { plan, headers: {}, connection: verifiedConnection(identity.clientCert) };
  }
  const header = plan.authn?.apiKey?.header ?? DEFAULT_API_KEY_HEADER;
  if ('as' in identity) {
    const a = identity.as;
    const principal: Principal = Object.freeze({
      subject: a.subject ?? 'test',
      tenant: a.tenant,
      roles: Object.freeze([...(a.roles ?? [])]),
      permissions: Object.freeze([...(a.permissions ?? [])]),
      keyId: undefined,
      claims: a.claims,
      via: 'test' as const,
    });
    // Its own header, so an `as:` principal is accepted by any authenticated route.
    const { auth, key } = mintedKey('x-portcullis-test-principal', { id: 'test', principal, expiresAt: undefined, disabled: false });
    return { plan: withAuthenticator(plan, auth, true), headers: { 'x-portcullis-test-principal': key } };
  }
  if ('apiKey' in identity) {
    if (plan.authn?.apiKey === undefined) throw new SimulationError('the policy configures no API keys (authentication.apiKeys)');
    const { auth, key } = mintedKey(header, keyRecord(plan, identity.apiKey));
    return { plan: withAuthenticator(plan, auth, false), headers: { [header]: key } };
  }
  const { auth, token } = await jwtIdentity(plan, identity.jwt.claims);
  return { plan: withAuthenticator(plan, auth, false), headers: { authorization: `Bearer ${token}` } };
}

/** The engine `test` and `explain` decide with: the policy's stages, no store, nothing spent. */
function offlineEngine(): Engine {
  return Engine.create({ store: { store: new MemoryStore() } }, 'policy');
}

/** Header names and values as a client would send them: Host first, then the request's, then the credential. */
function rawHeadersOf(r: SimRequest, host: string, extra: Readonly<Record<string, string>>): string[] {
  const raw: string[] = ['Host', host];
  for (const [k, v] of Object.entries(r.headers ?? {})) raw.push(k, v);
  for (const [k, v] of Object.entries(extra)) raw.push(k, v);
  return raw;
}

export async function simulate(basePlan: Plan, r: SimRequest, engine: Engine = offlineEngine()): Promise<SimResult> {
  const hostHeader = r.host ?? 'localhost';
  const { plan, headers, connection } = await present(basePlan, r.identity);
  const method = r.method.toUpperCase();
  const ctx = RequestContext.of(plan, {
    method,
    target: r.path,
    rawHeaders: rawHeadersOf(r, hostHeader, headers),
    httpVersion: '1.1',
    peer: r.ip ?? '127.0.0.1',
    connection: connection ?? {},
  });
  ctx.trace = [];
  const finish = (out: Deny | null, canonicalPath: string | undefined, attempts: readonly RouteAttempt[]): SimResult => ({
    decision: out === null ? 'allow' : out.code,
    status: out === null ? 200 : REASONS[out.code].status,
    deny: out ?? undefined,
    canonicalPath,
    attempts,
    route: ctx.route?.name,
    roles: ctx.principal?.roles ?? [],
    principal: ctx.principal,
    shadowDecision: ctx.shadowDecision,
    trace: ctx.trace ?? [],
  });
  const refused = engine.prepare(ctx);
  if (refused !== undefined) {
    ctx.note('canonical', `${refused.code}: ${refused.detail ?? ''}`);
    return finish(refused, undefined, []);
  }
  ctx.note('canonical', `canonical path ${ctx.path}`);
  const attempts = plan.router.explain(method, ctx.host, ctx.path).attempts;
  const out = await engine.decide(ctx);
  // The gateway's own answer (a CORS preflight) is an allow with its own status.
  if (out !== null && isAnswer(out)) return { ...finish(null, ctx.path, attempts), status: out.status };
  return finish(out, ctx.path, attempts);
}
