// The authenticate stage. Public routes pass. Otherwise the route's methods are tried in its
// order: a method whose kind of credential is absent is "not mine" (try the next); the first one
// that finds its credential decides (success → ctx.principal; failure → its Deny, never a
// fall-through to a weaker method). No credential at all → AUTH_MISSING with a challenge. An API
// key and a bearer token together, on a route that accepts both, are 400: no order picks one.
import type { Logger } from 'pino';
import type { RequestContext } from '../core/context.js';
import { type Deny, deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import { authTotal, CellsBy2 } from '../observability/metrics.js';
import { type Authenticator, type AuthOutcome, NOT_MINE } from './authenticator.js';

/** Query parameter names that would carry an API key where it leaks (logs, referrers, history). */
const QUERY_KEY_NAMES = ['api_key', 'apikey', 'api-key', 'key'];

const BAD_DUPLICATE = {
  host: deny('BAD_REQUEST', 'The request has more than one Host header.'),
  authorization: deny('BAD_REQUEST', 'The request has more than one Authorization header.'),
  apiKey: deny('BAD_REQUEST', 'The request has more than one API key header.'),
};
const KEY_IN_QUERY = deny('BAD_REQUEST', 'API keys are accepted only in the API key header, never in the query string.');
const TWO_CREDENTIALS = deny('BAD_REQUEST', 'The request carries both an API key and a bearer token; send one credential.');
const BEARER = /^\s*bearer(\s|$)/i;

/**
 * Whether the request carries an API key header and a bearer Authorization, one pass. On a route
 * that accepts both, neither may win silently: the caller meant one identity, and the upstream
 * (with forwardCredentials) could act on the other.
 */
function carriesBoth(raw: readonly string[], apiKeyHeader: string): boolean {
  let key = false;
  let bearer = false;
  const keyLength = apiKeyHeader.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === keyLength && name.toLowerCase() === apiKeyHeader) key = true;
    else if (name.length === 13 && name.toLowerCase() === 'authorization' && BEARER.test(raw[i + 1]!)) bearer = true;
  }
  return key && bearer;
}

/** Which credential (or Host) header appears more than once, case-insensitively; Node keeps only one. */
function duplicateHeader(raw: readonly string[], apiKeyHeader: string | undefined): Deny | undefined {
  let host = 0;
  let auth = 0;
  let key = 0;
  const keyLength = apiKeyHeader === undefined ? -1 : apiKeyHeader.length;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const n = name.length;
    if (n === 4) {
      if (name.toLowerCase() === 'host' && ++host > 1) return BAD_DUPLICATE.host;
    } else if (n === 13 && name.toLowerCase() === 'authorization' && ++auth > 1) return BAD_DUPLICATE.authorization;
    if (n === keyLength && name.toLowerCase() === apiKeyHeader && ++key > 1) return BAD_DUPLICATE.apiKey;
  }
  return undefined;
}

/** Whether a raw query string ("?a=b&…") names an API key parameter (or the key header itself). */
function queryCarriesKey(query: string, names: ReadonlySet<string>): boolean {
  let start = query.charCodeAt(0) === 63 /* ? */ ? 1 : 0;
  while (start < query.length) {
    let end = query.indexOf('&', start);
    if (end === -1) end = query.length;
    const eq = query.indexOf('=', start);
    let name = query.slice(start, eq === -1 || eq > end ? end : eq);
    if (name.includes('%') || name.includes('+')) {
      try {
        name = decodeURIComponent(name.replace(/\+/g, ' '));
      } catch {
        // undecodable: compare as written
      }
    }
    if (names.has(name.trim().toLowerCase())) return true;
    start = end + 1;
  }
  return false;
}

export interface AuthenticateStageOptions {
  readonly logger?: Pick<Logger, 'info' | 'debug'> | undefined;
  /** Called on each credential failure (lockout counting); must not throw or block. */
  readonly onFailure?: ((ctx: RequestContext, code: string) => void) | undefined;
}

class AuthenticateStage implements Stage {
  readonly name = 'authenticate';
  readonly #logger: Pick<Logger, 'info' | 'debug'> | undefined;
  readonly #onFailure: ((ctx: RequestContext, code: string) => void) | undefined;
  readonly #queryNames = new Map<string, ReadonlySet<string>>();
  readonly #counters = new CellsBy2((method, result) => authTotal.cell(method, result));

  constructor(options: AuthenticateStageOptions = {}) {
    this.#logger = options.logger;
    this.#onFailure = options.onFailure;
  }

  run(ctx: RequestContext): Outcome | Promise<Outcome> {
    const authn = ctx.plan.authn;
    const apiKey = authn?.apiKey;
    const dup = duplicateHeader(ctx.rawHeaders, apiKey?.header);
    if (dup !== undefined) return this.#refuse(ctx, 'none', dup, 'duplicate-header');
    const route = ctx.route;
    if (route === undefined || route.public) return CONTINUE;
    const routeAuthn = authn?.routes.get(route.index);
    if (routeAuthn === undefined) return this.#refuse(ctx, 'none', deny('AUTH_MISSING'), 'no-method');
    if (apiKey !== undefined && ctx.query.length > 1 && queryCarriesKey(ctx.query, this.#namesFor(apiKey.header))) {
      return this.#refuse(ctx, 'apiKey', KEY_IN_QUERY, 'key-in-query');
    }
    if (routeAuthn.both && carriesBoth(ctx.rawHeaders, apiKey!.header)) return this.#refuse(ctx, 'none', TWO_CREDENTIALS, 'two-credentials');
    const methods = routeAuthn.methods;
    for (let i = 0; i < methods.length; i++) {
      const m = methods[i]!;
      // The connection lets an authenticator remember what a keep-alive connection last presented.
      const out = m.authenticate(ctx.rawHeaders, ctx.connection, ctx.trustedPeer);
      if (out === NOT_MINE) continue;
      if (out instanceof Promise) return out.then((o) => this.#finish(ctx, m, o));
      return this.#finish(ctx, m, out);
    }
    return this.#refuse(ctx, 'none', routeAuthn.missing, 'missing');
  }

  #finish(ctx: RequestContext, m: Authenticator, out: AuthOutcome): Outcome {
    if (out.principal !== undefined) {
      ctx.principal = out.principal;
      this.#count(m.method, 'success');
      if (ctx.trace !== undefined) ctx.note(this.name, `authenticated ${out.principal.subject} via ${out.principal.via}`);
      return CONTINUE;
    }
    const d = out.deny!;
    this.#count(m.method, d.code);
    ctx.note(this.name, `${m.method}: ${d.code} (${out.failure ?? 'invalid'})`);
    // Never the credential itself: the reason, and what names the credential without revealing it.
    this.#logger?.info(
      { requestId: ctx.requestId, route: ctx.route?.name, method: m.method, code: d.code, reason: out.failure, keyId: out.keyId, kid: out.kid, iss: out.iss, ip: ctx.clientIp },
      'authentication failed',
    );
    this.#onFailure?.(ctx, d.code);
    return d;
  }

  #refuse(ctx: RequestContext, method: string, d: Deny, reason: string): Deny {
    this.#count(method, d.code);
    ctx.note(this.name, `${d.code} (${reason})`);
    if (reason !== 'missing') this.#logger?.info({ requestId: ctx.requestId, route: ctx.route?.name, code: d.code, reason, ip: ctx.clientIp }, 'authentication refused');
    return d;
  }

  #count(method: string, result: string): void {
    this.#counters.of(method, result).n++;
  }

  #namesFor(header: string): ReadonlySet<string> {
    let names = this.#queryNames.get(header);
    if (names === undefined) this.#queryNames.set(header, (names = new Set([...QUERY_KEY_NAMES, header])));
    return names;
  }
}

export function createAuthenticateStage(options: AuthenticateStageOptions = {}): Stage {
  return new AuthenticateStage(options);
}
