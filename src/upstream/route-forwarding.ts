// Per-route forwarding settings: `timeouts.response` (overriding the upstream's) and the header
// transforms `headers: { request, response }: { set, remove }`. A set value is compiled once into
// a template of literal pieces and placeholders ({principal.subject}, {principal.tenant}, {route},
// {requestId}); rendering concatenates. Gateway-owned names (identity, forwarding, hop-by-hop,
// credentials, framing, the request id, rate-limit and CORS answers) are refused at load: a policy
// cannot make the gateway lie about who is calling or how the message is framed.
import type { AuthnPlan } from '../authn/compile.js';
import type { RequestContext } from '../core/context.js';
import { RESERVED_REQUEST_HEADERS, RESPONSE_HOP_BY_HOP_HEADERS } from '../header-names.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { parseDuration } from '../policy/values.js';

declare module '../core/plan.js' {
  interface Plan {
    /** Per route index: the response timeout overriding the upstream's (ms); undefined: the upstream's. */
    readonly routeTimeouts: readonly (number | undefined)[];
    /** Per route index: header transforms; undefined: none. */
    readonly headerTransforms: readonly (RouteHeaders | undefined)[];
  }
}

/** One direction's transform: names (lower case) removed, then headers set. */
interface HeaderTransform {
  /** Names whose incoming copies are dropped: every removed and every set name. */
  readonly drop: ReadonlySet<string>;
  /** Appends the set headers (a header whose value would be invalid is left out). */
  readonly append: (ctx: RequestContext, out: string[]) => void;
}

interface RouteHeaders {
  readonly request: HeaderTransform | undefined;
  readonly response: HeaderTransform | undefined;
}

/** Gateway-owned response names: framing, the request id, rate limits, and CORS (configured with `cors`). */
const RESERVED_RESPONSE: ReadonlySet<string> = new Set([...RESPONSE_HOP_BY_HOP_HEADERS, 'content-length', 'x-request-id', 'ratelimit', 'ratelimit-policy', 'retry-after', 'www-authenticate', 'vary']);
const isCorsName = (n: string): boolean => n.startsWith('access-control-');

type Piece = string | ((ctx: RequestContext) => string | undefined);
const PLACEHOLDERS: Readonly<Record<string, (ctx: RequestContext) => string | undefined>> = {
  'principal.subject': (ctx) => ctx.principal?.subject,
  'principal.tenant': (ctx) => ctx.principal?.tenant,
  route: (ctx) => ctx.route?.name,
  requestId: (ctx) => ctx.requestId,
};
const PLACEHOLDER = /\{([^{}]*)\}/g;
/** What node:http and undici accept in a header value: tab, visible ASCII, obs-text. */
const INVALID_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/** A value template, or why it is invalid. */
function compileTemplate(value: string): Piece[] | string {
  const pieces: Piece[] = [];
  let from = 0;
  for (const m of value.matchAll(PLACEHOLDER)) {
    const get = PLACEHOLDERS[m[1]!];
    if (get === undefined) return `unknown placeholder {${m[1]}}: use {principal.subject}, {principal.tenant}, {route} or {requestId}`;
    if (m.index > from) pieces.push(value.slice(from, m.index));
    pieces.push(get);
    from = m.index + m[0].length;
  }
  if (from < value.length) pieces.push(value.slice(from));
  if (pieces.some((p) => typeof p === 'string' && INVALID_VALUE.test(p))) return 'the value has a character a header value cannot carry (CR, LF or another control character)';
  return pieces;
}

/** A template's value for one request; undefined when a placeholder has no value or would make the header invalid. */
function render(pieces: readonly Piece[], ctx: RequestContext): string | undefined {
  if (pieces.length === 1 && typeof pieces[0] === 'string') return pieces[0];
  let out = '';
  for (const p of pieces) {
    if (typeof p === 'string') out += p;
    else {
      const v = p(ctx);
      if (v === undefined || INVALID_VALUE.test(v)) return undefined;
      out += v;
    }
  }
  return out;
}

function compileTransform(
  spec: { readonly set?: Readonly<Record<string, string>> | undefined; readonly remove?: readonly string[] | undefined } | undefined,
  at: (string | number)[],
  reserved: (name: string) => string | undefined,
  cx: CompileContext,
): HeaderTransform | undefined {
  if (spec === undefined) return undefined;
  const drop = new Set<string>();
  const sets: [string, Piece[]][] = [];
  (spec.remove ?? []).forEach((name, i) => {
    const n = name.toLowerCase();
    const why = reserved(n);
    if (why !== undefined) cx.error([...at, 'remove', i], `"${name}" cannot be removed: ${why}`);
    drop.add(n);
  });
  for (const [name, value] of Object.entries(spec.set ?? {})) {
    const n = name.toLowerCase();
    const why = reserved(n);
    if (why !== undefined) {
      cx.error([...at, 'set', name], `"${name}" cannot be set: ${why}`);
      continue;
    }
    const t = compileTemplate(value);
    if (typeof t === 'string') {
      cx.error([...at, 'set', name], t);
      continue;
    }
    drop.add(n);
    sets.push([n, t]);
  }
  const append = (ctx: RequestContext, out: string[]): void => {
    for (const [n, t] of sets) {
      const v = render(t, ctx);
      if (v !== undefined) out.push(n, v);
    }
  };
  return { drop, append };
}

export interface RouteForwarding {
  readonly routeTimeouts: (number | undefined)[];
  readonly headerTransforms: (RouteHeaders | undefined)[];
}

export function compileRouteForwarding(doc: PolicyDocument, cx: CompileContext, authn: AuthnPlan | undefined, identityJwtHeader: string | undefined): RouteForwarding {
  const routeTimeouts: (number | undefined)[] = [];
  const headerTransforms: (RouteHeaders | undefined)[] = [];
  const identity = authn?.forward.strip;
  const apiKeyHeader = authn?.apiKey?.header;
  const reservedRequest = (n: string): string | undefined => {
    if (n === apiKeyHeader || n === 'authorization' || n === 'cookie') return 'credentials are not transformed';
    if (identity?.has(n) === true || n === identityJwtHeader) return 'the gateway sets identity headers itself';
    if (RESERVED_REQUEST_HEADERS.has(n)) return 'the gateway owns this header (forwarding, hop-by-hop or framing)';
    return undefined;
  };
  const reservedResponse = (n: string): string | undefined => {
    if (isCorsName(n)) return 'CORS headers come from the cors settings';
    if (RESERVED_RESPONSE.has(n)) return 'the gateway owns this header (framing, request id, rate limits or Vary)';
    return undefined;
  };
  (doc.routes ?? []).forEach((route, index) => {
    const at = ['routes', index];
    if (route.timeouts?.response !== undefined) routeTimeouts[index] = parseDuration(route.timeouts.response);
    const h = route.headers;
    if (h === undefined) return;
    const request = compileTransform(h.request, [...at, 'headers', 'request'], reservedRequest, cx);
    const response = compileTransform(h.response, [...at, 'headers', 'response'], reservedResponse, cx);
    if (request !== undefined || response !== undefined) headerTransforms[index] = { request, response };
  });
  return { routeTimeouts, headerTransforms };
}
