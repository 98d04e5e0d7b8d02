// What crosses the proxy in each direction. Request headers are built in one pass over
// `rawHeaders` into the flat [name, value, …] array undici takes; nothing the client sends can
// choose identity or make the upstream see another request than the one the gateway checked:
// identity, forwarding, rewrite and method-override headers are the gateway's (src/header-names.ts),
// whatever their case, however often they appear, whatever Connection lists, and in their "_"
// look-alike spellings too.

import { type IdentityForward, identityHeaders } from '../authn/forward.js';
import type { RequestContext } from '../core/context.js';
import { FORWARDED_BY_GATEWAY, FORWARDED_FROM_TRUSTED, GATEWAY_ONLY, HOP_BY_HOP, METHOD_OVERRIDE_HEADERS, RESPONSE_HOP_BY_HOP_HEADERS } from '../header-names.js';
import type { ProxyContext } from './context.js';

/** How a request header name is treated; one Map lookup per header decides. */
enum Kind {
  /** Hop-by-hop, identity, credentials (unless forwarded), or set by the gateway only: dropped. */
  Drop = 1,
  /** Written by the gateway; a trusted proxy's value is carried over (and extended). */
  GatewayOwned = 2,
  /** Connection: dropped, and the names it lists are dropped too. */
  Connection = 3,
  /** Passed on from a trusted proxy only. */
  TrustedOnly = 4,
  /** Passed on only when the route honoured the override (ctx.methodOverride). */
  MethodOverride = 5,
}

const RESPONSE_HOP_BY_HOP = new Set(RESPONSE_HOP_BY_HOP_HEADERS);
const UNDERSCORES = /_/g;

/** The request header classes for one set of forwarding rules (identity and credential names are plan-specific). */
const kindsByForward = new WeakMap<IdentityForward, ReadonlyMap<string, Kind>>();
function kindsOf(forward: IdentityForward): ReadonlyMap<string, Kind> {
  let kinds = kindsByForward.get(forward);
  if (kinds === undefined) {
    const m = new Map<string, Kind>();
    for (const n of forward.strip) m.set(n, Kind.Drop);
    for (const n of HOP_BY_HOP) m.set(n, Kind.Drop);
    for (const n of GATEWAY_ONLY) m.set(n, Kind.Drop);
    for (const n of FORWARDED_BY_GATEWAY) m.set(n, Kind.GatewayOwned);
    for (const n of FORWARDED_FROM_TRUSTED) m.set(n, Kind.TrustedOnly);
    for (const n of METHOD_OVERRIDE_HEADERS) m.set(n, Kind.MethodOverride);
    m.set('connection', Kind.Connection);
    kindsByForward.set(forward, (kinds = m));
  }
  return kinds;
}

/**
 * Whether a name with "_" is a look-alike of a name the gateway owns (x_auth_tenant,
 * X-Forwarded_For): those are dropped from every peer, trusted or not, since a CGI-style upstream
 * would read them as the real header.
 */
function isLookAlike(kinds: ReadonlyMap<string, Kind>, lowerName: string): boolean {
  return lowerName.indexOf('_') !== -1 && kinds.has(lowerName.replace(UNDERSCORES, '-'));
}

/** The lower-case names a Connection value lists, besides close and keep-alive (undefined: none). */
function listedIn(value: string, into: string[] | undefined): string[] | undefined {
  const v = value.length === 10 || value.length === 5 ? value.toLowerCase() : '';
  if (v === 'keep-alive' || v === 'close') return into; // the usual values: nothing to split
  for (const token of value.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') (into ??= []).push(t);
  }
  return into;
}

/** Removes the [name, value] pairs whose (lower-case) name is listed, in place. */
function dropListed(out: string[], listed: readonly string[], lowerCase: boolean): void {
  let w = 0;
  for (let r = 0; r < out.length; r += 2) {
    const name = lowerCase ? out[r]! : out[r]!.toLowerCase();
    if (listed.includes(name)) continue;
    out[w++] = out[r]!;
    out[w++] = out[r + 1]!;
  }
  out.length = w;
}

/**
 * Upstream request headers for an allowed request. Host is the upstream's own: undici writes it
 * from the pool's origin when `upstreamHost` is undefined (node:http callers pass it explicitly).
 */
export function upstreamRequestHeaders(ctx: ProxyContext, upstreamHost: string | undefined): string[] {
  const raw = ctx.rawHeaders;
  const forward = ctx.plan.authn.forward;
  const kinds = kindsOf(forward);
  const out: string[] = [];
  const route = ctx.route;
  // routes[].headers.request: its names never come from the client (removed, or set below).
  const transform = route === undefined ? undefined : ctx.plan.headerTransforms[route.index]?.request;
  if (route !== undefined && ctx.plan.upstreams.get(route.upstream)?.preserveHost === true) upstreamHost = ctx.hostHeader;
  let listed: string[] | undefined;
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const kind = kinds.get(name);
    // A "_" look-alike of a transformed name too: CGI-style upstreams would read it as the same header.
    if (transform !== undefined && (transform.drop.has(name) || (name.indexOf('_') !== -1 && transform.drop.has(name.replace(UNDERSCORES, '-'))))) continue;
    if (kind === undefined) {
      if (!isLookAlike(kinds, name)) out.push(name, raw[i + 1]!);
    } else if (kind === Kind.TrustedOnly) {
      if (ctx.trustedPeer) out.push(name, raw[i + 1]!);
    } else if (kind === Kind.MethodOverride) {
      if (ctx.methodOverride !== undefined) out.push(name, raw[i + 1]!);
    } else if (kind === Kind.GatewayOwned) {
      // Only a trusted proxy's values carry over (and are extended below).
      if (ctx.trustedPeer) {
        const v = raw[i + 1]!;
        if (name === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? v : `${forwardedFor}, ${v}`;
        else if (name === 'x-forwarded-proto') forwardedProto ??= v;
        else if (name === 'x-forwarded-host') forwardedHost ??= v;
      }
    } else if (kind === Kind.Connection) {
      listed = listedIn(raw[i + 1]!, listed);
    }
  }
  if (listed !== undefined) dropListed(out, listed, true);
  const peer = ctx.peerIp;
  if (upstreamHost !== undefined) out.push('host', upstreamHost);
  out.push(
    'x-forwarded-for',
    forwardedFor === undefined ? peer : `${forwardedFor}, ${peer}`,
    'x-forwarded-proto',
    forwardedProto ?? ((ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'),
    'x-forwarded-host',
    forwardedHost ?? ctx.hostHeader,
    'x-request-id',
    ctx.requestId,
    'traceparent',
    ctx.traceparent,
  );
  transform?.append(ctx, out);
  identityHeaders(forward, ctx.principal, out);
  if (ctx.identityJwt !== undefined && ctx.plan.identityJwt !== undefined) out.push(ctx.plan.identityJwt.header, ctx.identityJwt);
  return out;
}

/** Appends the gateway's own response headers: the request id and the rate-limit headers. */
function gatewayResponseHeaders(out: string[], requestId: string, extra: Readonly<Record<string, string>> | undefined): string[] {
  out.push('x-request-id', requestId);
  if (extra !== undefined) for (const k in extra) out.push(k, extra[k]!);
  return out;
}

/** The client's response head, from the upstream's. */
export interface ResponseHead {
  /** Flat [name, value, …] for `writeHead`. */
  readonly headers: string[];
  /** The upstream's Content-Length, or -1 when absent or not a plain number. */
  readonly contentLength: number;
}

/**
 * The client response head from undici's raw response headers ([name, value, …] as bytes). Bytes
 * are carried as latin1 so any value round-trips unchanged.
 */
export function clientResponseHeadersRaw(raw: readonly Buffer[], requestId: string, extra?: Readonly<Record<string, string>>, ctx?: RequestContext): ResponseHead {
  const out: string[] = [];
  let listed: string[] | undefined;
  let contentLength = -1;
  const route = ctx?.route;
  const transform = route === undefined ? undefined : ctx!.plan.headerTransforms[route.index]?.response;
  // A CORS route's Access-Control-* answer is the gateway's; the upstream's Vary is kept and extended.
  const cors = ctx?.responseHeaders;
  let vary = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const lower = name.toLowerCase();
    if (RESPONSE_HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') listed = listedIn(raw[i + 1]!.toString('latin1'), listed);
      continue;
    }
    if (lower === 'x-request-id') continue;
    if (transform?.drop.has(lower)) continue;
    if (cors !== undefined) {
      if (lower.startsWith('access-control-')) continue;
      if (lower === 'vary' && vary === -1) vary = out.length;
    }
    const value = raw[i + 1]!.toString('latin1');
    if (lower === 'content-length') {
      const n = Number(value);
      contentLength = Number.isSafeInteger(n) && n >= 0 ? n : -1;
    }
    out.push(name, value);
  }
  if (listed !== undefined) dropListed(out, listed, false);
  if (transform !== undefined) transform.append(ctx!, out);
  if (cors !== undefined) addAnswerHeaders(out, cors, listed === undefined ? vary : out.findIndex((n, j) => j % 2 === 0 && n.toLowerCase() === 'vary'));
  return { headers: gatewayResponseHeaders(out, requestId, extra), contentLength };
}

/** Appends the gateway's answer headers (CORS); a Vary is merged into the upstream's (at `vary`, -1: none) rather than replacing it. */
function addAnswerHeaders(out: string[], headers: readonly string[], vary: number): void {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name === 'vary' && vary !== -1) {
      out[vary + 1] = withVary(out[vary + 1]!, headers[i + 1]!);
      continue;
    }
    out.push(name, headers[i + 1]!);
  }
}

/** `value` with `token` added unless it already lists it (or is "*"). */
function withVary(value: string, token: string): string {
  const t = token.toLowerCase();
  for (const v of value.split(',')) {
    const x = v.trim().toLowerCase();
    if (x === t || x === '*') return value;
  }
  return value.trim() === '' ? token : `${value}, ${token}`;
}

/** Client response headers from a parsed (node:http) header object, as a flat array for `writeHead`. */
export function clientResponseHeaders(headers: Record<string, string | string[] | undefined>, requestId: string, extra?: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  const connection = headers.connection;
  const listed = connection === undefined ? undefined : listedIn(typeof connection === 'string' ? connection : connection.join(','), undefined);
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || RESPONSE_HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
    if (listed?.includes(name)) continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const one of v) out.push(name, one);
  }
  return gatewayResponseHeaders(out, requestId, extra);
}
