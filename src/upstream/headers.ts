// What crosses the proxy in each direction. Request headers are built in one pass over
// `rawHeaders` into the flat [name, value, …] array undici takes; nothing the client sends can
// choose identity: X-Forwarded-*, X-Request-Id, traceparent and the identity headers are always
// the gateway's, whatever their case, however often they appear, whatever Connection lists.
import type { RequestContext } from '../context.js';
import { forwardOf, identityHeaders } from '../authn/forward.js';

/** Hop-by-hop headers (RFC 9110 §7.6.1) plus those the proxy itself sets. */
// `expect` too: the proxy answers 100-continue itself (after every stage passed), and undici refuses it.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'host', 'proxy-authorization', 'proxy-authenticate', 'expect']);
/** Set by the gateway: client copies are dropped. */
const GATEWAY_OWNED = new Set(['x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'forwarded', 'x-request-id', 'traceparent', 'tracestate', 'x-real-ip']);
const RESPONSE_HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate']);

/** The lower-case names listed in Connection header values (each may be a comma list). */
function connectionListed(raw: readonly string[]): string[] | undefined {
  let listed: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 10 || name.toLowerCase() !== 'connection') continue;
    for (const token of raw[i + 1]!.split(',')) {
      const t = token.trim().toLowerCase();
      if (t !== '' && t !== 'close' && t !== 'keep-alive') (listed ??= []).push(t);
    }
  }
  return listed;
}

/** Upstream request headers for an allowed request. */
export function upstreamRequestHeaders(ctx: RequestContext, upstreamHost: string): string[] {
  const raw = ctx.req.rawHeaders;
  const forward = forwardOf(ctx.plan);
  const strip = forward.strip;
  const listed = connectionListed(raw);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  let forwardedProto: string | undefined;
  let forwardedHost: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (HOP_BY_HOP.has(name) || strip.has(name)) continue;
    if (GATEWAY_OWNED.has(name)) {
      // Only a trusted proxy's values carry over (and are extended below).
      if (ctx.trustedPeer) {
        const v = raw[i + 1]!;
        if (name === 'x-forwarded-for') forwardedFor = forwardedFor === undefined ? v : `${forwardedFor}, ${v}`;
        else if (name === 'x-forwarded-proto') forwardedProto ??= v;
        else if (name === 'x-forwarded-host') forwardedHost ??= v;
      }
      continue;
    }
    if (listed !== undefined && listed.includes(name)) continue;
    out.push(name, raw[i + 1]!);
  }
  const peer = ctx.peerIp;
  out.push(
    'host', upstreamHost,
    'x-forwarded-for', forwardedFor === undefined ? peer : `${forwardedFor}, ${peer}`,
    'x-forwarded-proto', forwardedProto ?? ((ctx.req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'),
    'x-forwarded-host', forwardedHost ?? ctx.req.headers.host ?? '',
    'x-request-id', ctx.requestId,
    'traceparent', ctx.traceparent,
  );
  identityHeaders(forward, ctx.principal, out);
  if (ctx.identityJwt !== undefined && ctx.plan.identityJwt !== undefined) out.push(ctx.plan.identityJwt.header, ctx.identityJwt);
  return out;
}

/** Client response headers from the upstream's, as a flat array for `writeHead`. */
export function clientResponseHeaders(headers: Record<string, string | string[] | undefined>, requestId: string, extra?: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  const connection = headers.connection;
  const listed = connection === undefined ? undefined : connectionListed(['connection', typeof connection === 'string' ? connection : connection.join(',')]);
  for (const name in headers) {
    const v = headers[name];
    if (v === undefined || RESPONSE_HOP_BY_HOP.has(name) || name === 'x-request-id') continue;
    if (listed !== undefined && listed.includes(name)) continue;
    if (typeof v === 'string') out.push(name, v);
    else for (const one of v) out.push(name, one);
  }
  out.push('x-request-id', requestId);
  if (extra !== undefined) for (const k in extra) out.push(k, extra[k]!);
  return out;
}
