// Upgrade requests (WebSockets). The server runs them through the same stages as any request,
// answering through a ServerResponse bound to the raw socket, so denials are the usual
// problem+json and the request settles (concurrency slot, metrics, audit) when the socket closes:
// a tunnel holds its concurrency slot for its whole life. The upstream is asked with node:http
// (which tells a 101 from an ordinary answer): only a 101 opens the tunnel; anything else is
// relayed as the upstream's response and the connection is closed.
import { type ClientRequest, request as httpRequest, type IncomingMessage, ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Deny, deny } from '../core/reasons.js';
import { websocketsOpen } from '../observability/metrics.js';
import type { ProxyContext } from './context.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './upstream-headers.js';

const H2C = deny('BAD_REQUEST', 'Upgrade to h2c is not supported.');
const TIMEOUT = deny('UPSTREAM_TIMEOUT');
const UNREACHABLE = deny('UPSTREAM_ERROR');

/** A response bound to an upgrade request's socket; the socket closes once a non-tunnel answer is sent. */
export function upgradeResponse(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.assignSocket(socket as Socket);
  res.shouldKeepAlive = false;
  socket.on('error', () => socket.destroy());
  res.once('finish', () => {
    // Not a tunnel: close for good once flushed (a half-closed socket would keep the request in flight).
    if (res.statusCode !== 101) (socket as Socket).destroySoon();
  });
  return res;
}

/** Whether the Upgrade header asks for h2c (refused: HTTP/2 cleartext upgrades bypass this proxy's parser). */
function wantsH2c(req: IncomingMessage): boolean {
  const u = req.headers.upgrade;
  return (
    u
      ?.toLowerCase()
      .split(',')
      .some((p) => p.trim() === 'h2c') === true
  );
}

/**
 * Opens the tunnel for an upgrade request every stage allowed; `onFailure` answers a Deny,
 * `onFault` gets an exception thrown in one of the callbacks below (they run from the event loop,
 * where nothing else would catch it).
 */
export function forwardUpgrade(ctx: ProxyContext, forwardPath: string, head: Buffer, onFailure: (ctx: ProxyContext, d: Deny) => void, onFault: (ctx: ProxyContext, err: unknown) => void): void {
  const { req, res } = ctx;
  const client = req.socket;
  if (wantsH2c(req)) return onFailure(ctx, H2C);
  const up = ctx.plan.upstreams.get(ctx.route!.upstream)!;
  const target = ctx.admission?.handle.target ?? up.targets[0]!;
  const url = new URL(target.origin);
  const headers = upstreamRequestHeaders(ctx, url.host);
  headers.push('connection', 'Upgrade', 'upgrade', req.headers.upgrade ?? 'websocket');
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const upReq: ClientRequest = send({
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port,
    method: req.method,
    path: target.basePath + forwardPath + ctx.query,
    headers,
    agent: false,
  });
  let answered = false;
  const timer = setTimeout(() => fail(TIMEOUT, true), up.connectTimeoutMs + up.responseTimeoutMs);
  const fail = (d: Deny, upstreamFault: boolean): void => {
    if (answered) return;
    answered = true;
    clearTimeout(timer);
    try {
      upReq.destroy();
      if (upstreamFault) ctx.admission?.fail();
      else ctx.admission?.release();
      onFailure(ctx, d);
    } catch (err) {
      onFault(ctx, err);
    }
  };
  const fault = (err: unknown, upSocket?: Duplex): void => {
    answered = true;
    clearTimeout(timer);
    upSocket?.destroy();
    upReq.destroy();
    onFault(ctx, err);
  };
  // The client went away before the upstream answered.
  client.once('close', () => fail(UNREACHABLE, false));
  upReq.on('error', () => fail(UNREACHABLE, true));

  upReq.on('response', (upRes: IncomingMessage) => {
    try {
      relay(upRes);
    } catch (err) {
      upRes.destroy();
      fault(err);
    }
  });
  const relay = (upRes: IncomingMessage): void => {
    if (answered) return void upRes.destroy();
    answered = true;
    clearTimeout(timer);
    ctx.admission?.settle(upRes.statusCode ?? 502);
    res.writeHead(upRes.statusCode ?? 502, clientResponseHeaders(upRes.headers, ctx.requestId, ctx.limits?.headers));
    upRes.pipe(res);
    upRes.on('error', () => client.destroy());
  };

  upReq.on('upgrade', (upRes: IncomingMessage, upSocket: Socket, upHead: Buffer) => {
    try {
      tunnel(upRes, upSocket, upHead);
    } catch (err) {
      fault(err, upSocket);
    }
  });
  const tunnel = (upRes: IncomingMessage, upSocket: Socket, upHead: Buffer): void => {
    if (answered) return void upSocket.destroy();
    answered = true;
    clearTimeout(timer);
    ctx.admission?.settle(101);
    const out = clientResponseHeaders(upRes.headers, ctx.requestId, ctx.limits?.headers);
    out.push('connection', 'Upgrade', 'upgrade', upRes.headers.upgrade ?? 'websocket');
    res.writeHead(101, out);
    res.end();
    websocketsOpen.inc();
    let open = true;
    const close = (): void => {
      if (!open) return;
      open = false;
      websocketsOpen.dec();
      upSocket.destroy();
      client.destroy();
    };
    upSocket.on('error', close).on('close', close);
    client.on('error', close).on('close', close);
    if (upHead.length > 0) client.write(upHead);
    if (head.length > 0) upSocket.write(head);
    upSocket.pipe(client);
    client.pipe(upSocket);
  };

  upReq.end();
}
