// CORS in two steps. The preflight check runs before the stages (Engine.decide calls it first): a browser's preflight (OPTIONS with
// Origin and Access-Control-Request-Method) carries no credentials and asks about another method,
// so it is matched to the route that would serve the method it asks about and answered here, 204
// or 403 CORS_REJECTED, before anything would ask it for credentials. The answer stage runs after
// routing and leaves on the context the headers every answer to an actual request carries (the
// door adds them to the upstream's response and to a denial alike, so a browser can read a 401).
// Routes without a CORS rule see neither: their preflights reach routing as any OPTIONS does.
import type { RequestContext } from '../core/context.js';
import type { Deny } from '../core/reasons.js';
import { deny } from '../core/reasons.js';
import { type Answer, CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import type { CorsRule } from './cors.js';

const REJECTED_ORIGIN = deny('CORS_REJECTED', 'This origin may not call this route.', { vary: 'Origin' });
const REJECTED_METHOD = deny('CORS_REJECTED', 'This method may not be called cross-origin on this route.', { vary: 'Origin' });
const REJECTED_HEADERS = deny('CORS_REJECTED', 'A requested header may not be sent cross-origin to this route.', { vary: 'Origin' });

interface PreflightHeaders {
  origin: string | undefined;
  method: string | undefined;
  headers: string | undefined;
}

function preflightHeaders(raw: readonly string[]): PreflightHeaders {
  const h: PreflightHeaders = { origin: undefined, method: undefined, headers: undefined };
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 6 && name.toLowerCase() === 'origin') h.origin ??= raw[i + 1];
    else if (name.length === 29 && name.toLowerCase() === 'access-control-request-method') h.method ??= raw[i + 1];
    else if (name.length === 30 && name.toLowerCase() === 'access-control-request-headers') h.headers = h.headers === undefined ? raw[i + 1] : `${h.headers},${raw[i + 1]}`;
  }
  return h;
}

function originOf(raw: readonly string[]): string | undefined {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 6 && name.toLowerCase() === 'origin') return raw[i + 1];
  }
  return undefined;
}

export function createCorsStage(): Stage {
  return { name: 'cors', run: answer };
}

/**
 * A CORS preflight for a CORS route: its answer (204 with the Access-Control-* headers) or its
 * refusal. Undefined for any other request: the stages decide it.
 */
export function corsPreflight(ctx: RequestContext): Answer | Deny | undefined {
  const cors = ctx.plan.cors;
  if (cors === undefined || ctx.method !== 'OPTIONS') return undefined;
  const h = preflightHeaders(ctx.rawHeaders);
  if (h.origin === undefined || h.method === undefined) return undefined;
  const asked = h.method.trim().toUpperCase();
  const match = ctx.plan.router.find(asked, ctx.host, ctx.path);
  let rule: CorsRule | undefined;
  if (match !== undefined) {
    rule = cors.routes[match.route.index];
    // A route without CORS: the preflight is an ordinary OPTIONS request (its upstream may answer it).
    if (rule === undefined) return undefined;
    ctx.route = match.route;
    ctx.params = match.params;
  } else {
    // No route serves that method here; if a CORS route serves the path, the method is what is refused.
    for (const route of ctx.plan.routes) {
      const r = cors.routes[route.index];
      if (r === undefined || (route.hosts !== undefined && !route.hosts.has(ctx.host)) || route.matcher.match(ctx.path) === undefined) continue;
      ctx.route = route;
      ctx.note('corsPreflight', `no route serves ${asked} ${ctx.path}; route ${route.name} serves the path`);
      return REJECTED_METHOD;
    }
    return undefined;
  }
  if (!rule.allowsOrigin(h.origin)) {
    ctx.note('corsPreflight', `origin ${h.origin} is not allowed on route ${match.route.name}`);
    return REJECTED_ORIGIN;
  }
  if (!rule.methods.has(asked)) {
    ctx.note('corsPreflight', `method ${asked} is not allowed cross-origin on route ${match.route.name}`);
    return REJECTED_METHOD;
  }
  if (!rule.allowsHeaders(h.headers)) {
    ctx.note('corsPreflight', `headers "${h.headers}" are not all allowed on route ${match.route.name}`);
    return REJECTED_HEADERS;
  }
  ctx.note('corsPreflight', `preflight for ${asked} from ${h.origin} answered for route ${match.route.name}`);
  const out: Answer = { answer: true, status: 204, headers: rule.preflight(h.origin) };
  return out;
}

function answer(ctx: RequestContext): Outcome {
  const cors = ctx.plan.cors;
  if (cors === undefined || ctx.route === undefined) return CONTINUE;
  const rule = cors.routes[ctx.route.index];
  if (rule === undefined) return CONTINUE;
  // Set even when empty: on a CORS route the upstream's own Access-Control-* headers never pass.
  ctx.responseHeaders = rule.answer(originOf(ctx.rawHeaders));
  return CONTINUE;
}
