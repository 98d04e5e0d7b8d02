// The proxy listener: node:http with a strict parser and header/body/time limits. Per request it
// builds the RequestContext, establishes who the client is and the canonical path, runs the
// stages, and either answers a Deny as problem+json or forwards. When the response ends (finish,
// client abort or error) it settles exactly once: concurrency slot, metrics, audit record.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Logger } from 'pino';
import { RequestContext } from './context.js';
import { PROBLEM_CONTENT_TYPE, problemBody, statusOf, type Deny } from './errors.js';
import { runStages, type Outcome, type Stage } from './pipeline.js';
import type { PolicyManager } from './policy/manager.js';
import type { Plan } from './policy/plan.js';
import { canonicalize, isDeny } from './routing/canonical.js';
import { TrustedProxies } from './authn/client-ip.js';
import { Forwarder } from './upstream/forwarder.js';
import { forwardUpgrade, upgradeResponse } from './upstream/websocket.js';
import { inFlight, requestDuration, requestsTotal, type HotCell } from './observability/metrics.js';
import { requestIdFor } from './observability/request-id.js';
import { arrivalHeaders } from './request-headers.js';
import { traceparentFor } from './observability/traceparent.js';

/** Audit's view of a finished request (implemented by the audit pipeline; a no-op by default). */
export interface RequestRecorder {
  record(ctx: RequestContext, status: number, durationMs: number): void;
}

export interface ProxyServerOptions {
  readonly policy: PolicyManager;
  readonly stages: readonly Stage[];
  readonly logger: Logger;
  readonly recorder?: RequestRecorder;
  /** Whole-request limit for slow clients (default 60 s). */
  readonly requestTimeoutMs?: number;
}

const NO_ROUTE = '-';
type Histogram = { observe(v: number): void };

export class ProxyServer {
  readonly #server: Server;
  readonly #options: ProxyServerOptions;
  readonly #forwarder: Forwarder;
  readonly #trusted = new WeakMap<Plan, TrustedProxies>();
  /** portcullis_requests_total cells: route → (status, method, code) as one number → cell. */
  readonly #counters = new Map<string, Map<number, HotCell>>();
  readonly #methodIndex = new Map<string, number>();
  readonly #codeIndex = new Map<string, number>();
  readonly #durations = new Map<string, Histogram>();
  /** Open client sockets and their peer address, read once per connection rather than per request. */
  readonly #sockets = new Map<Socket, string | undefined>();
  #inFlight = 0;
  #draining = false;
  #drained: (() => void) | undefined;

  constructor(options: ProxyServerOptions) {
    this.#options = options;
    this.#forwarder = new Forwarder((ctx, d) => this.#deny(ctx, d));
    options.policy.onSwap((plan) => this.#forwarder.retain(plan));
    this.#server = createServer(
      {
        insecureHTTPParser: false,
        maxHeaderSize: 16 * 1024,
        requestTimeout: options.requestTimeoutMs ?? 60_000,
        headersTimeout: 10_000,
        keepAliveTimeout: 5_000,
        requireHostHeader: true,
        joinDuplicateHeaders: false,
      },
      (req, res) => this.#handle(req, res, false),
    );
    // Expect: 100-continue gets its 100 only once every stage has allowed the request.
    this.#server.on('checkContinue', (req, res) => this.#handle(req, res, true));
    // Upgrades (WebSockets) run the same stages; src/upstream/websocket.ts answers on the raw socket.
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#handle(req, upgradeResponse(req, socket), false, head));
    this.#server.on('connection', (s: Socket) => {
      this.#sockets.set(s, s.remoteAddress);
      s.once('close', () => this.#sockets.delete(s));
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      if (!socket.writable) return socket.destroy();
      const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
      const body = JSON.stringify({ type: 'about:blank', title: 'Bad Request', status, code: 'BAD_REQUEST', detail: 'The request could not be parsed.' });
      socket.end(`HTTP/1.1 ${status} Bad Request\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
    });
  }

  get server(): Server {
    return this.#server;
  }

  async listen(host: string, port: number): Promise<string> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    const a = this.#server.address() as AddressInfo;
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  #trustOf(plan: Plan): TrustedProxies {
    const compiled = plan.ipRules?.trusted;
    if (compiled !== undefined) return compiled;
    let t = this.#trusted.get(plan);
    if (t === undefined) this.#trusted.set(plan, (t = new TrustedProxies(plan.trustedProxies)));
    return t;
  }

  #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, upgradeHead?: Buffer): void {
    const ctx = new RequestContext(req, res, this.#options.policy.plan, performance.now());
    this.#inFlight++;
    inFlight.n++;
    // `on`, not `once`: the response is never reused, and `once` costs a wrapper per request.
    res.on('close', () => this.#settle(ctx));
    if (this.#draining) res.shouldKeepAlive = false;

    const trust = this.#trustOf(ctx.plan);
    const peer = this.#sockets.get(req.socket) ?? req.socket.remoteAddress ?? '';
    const h = arrivalHeaders(req.rawHeaders);
    ctx.trustedPeer = trust.trusts(peer);
    ctx.peerIp = peer;
    ctx.clientIp = trust.clientIp(peer, h.forwardedFor);
    ctx.requestId = requestIdFor(ctx.trustedPeer, h.requestId);
    ctx.traceparent = traceparentFor(h.traceparent);
    ctx.contentLength = h.contentLength;
    ctx.chunked = h.chunked;
    const hostHeader = (ctx.hostHeader = h.host ?? '');
    const target = canonicalize(req.url ?? '/', hostHeader);
    if (isDeny(target)) return this.#deny(ctx, target);
    ctx.path = target.path;
    ctx.query = target.query;
    ctx.host = hostOnly(hostHeader);

    let outcome: Outcome | Promise<Outcome>;
    try {
      outcome = runStages(this.#options.stages, ctx);
    } catch (err) {
      return this.#fault(ctx, err);
    }
    if (outcome === null) return this.#forward(ctx, target.forwardPath, expectContinue, upgradeHead);
    if (!(outcome instanceof Promise)) return this.#deny(ctx, outcome);
    outcome.then(
      (o) => (o === null ? this.#forward(ctx, target.forwardPath, expectContinue, upgradeHead) : this.#deny(ctx, o)),
      (err: unknown) => this.#fault(ctx, err),
    );
  }

  #forward(ctx: RequestContext, forwardPath: string, expectContinue: boolean, upgradeHead?: Buffer): void {
    if (ctx.res.destroyed) return;
    if (upgradeHead !== undefined) return forwardUpgrade(ctx, forwardPath, upgradeHead, (c, d) => this.#deny(c, d));
    if (expectContinue) ctx.res.writeContinue();
    this.#forwarder.forward(ctx, forwardPath);
  }

  /** A stage threw: a bug or an infrastructure fault. Logged in full; the client gets a 502 without details. */
  #fault(ctx: RequestContext, err: unknown): void {
    this.#options.logger.error({ err, requestId: ctx.requestId, route: ctx.route?.name }, 'request pipeline failed');
    this.#deny(ctx, { code: 'UPSTREAM_ERROR', detail: 'The gateway failed to handle this request.' });
  }

  #deny(ctx: RequestContext, d: Deny): void {
    ctx.code = d.code;
    const res = ctx.res;
    if (res.headersSent || res.destroyed) return;
    const body = problemBody(d, ctx.requestId);
    const headers: Record<string, string | number> = {
      'content-type': PROBLEM_CONTENT_TYPE,
      'content-length': Buffer.byteLength(body),
      'x-request-id': ctx.requestId,
      'cache-control': 'no-store',
    };
    if (d.headers !== undefined) for (const k in d.headers) headers[k] = d.headers[k]!;
    const limitHeaders = ctx.limits?.headers;
    if (limitHeaders !== undefined) for (const k in limitHeaders) if (!(k in headers)) headers[k] = limitHeaders[k]!;
    // An unread request body (denied before reading it) would otherwise be parsed as the next request.
    if (!ctx.req.complete && (ctx.contentLength !== undefined || ctx.chunked)) {
      headers.connection = 'close';
      res.shouldKeepAlive = false;
    }
    res.writeHead(statusOf(d.code), headers);
    res.end(body);
  }

  #settle(ctx: RequestContext): void {
    const durationMs = performance.now() - ctx.start;
    const res = ctx.res;
    const status = res.headersSent ? res.statusCode : 499; // 499: the client went away first
    const route = ctx.route?.name ?? NO_ROUTE;
    ctx.admission?.release(); // breaker probe slot of a request that ended without an upstream answer
    if (!res.writableFinished) ctx.upstream?.abort();
    const release = ctx.limits?.release;
    if (release !== undefined) {
      ctx.limits!.release = undefined;
      release();
    }
    const code = ctx.code ?? (res.writableFinished ? 'OK' : 'CLIENT_CLOSED');
    const method = ctx.req.method ?? '';
    // A number, not a concatenated string, names the cell: no string is built or hashed per request.
    const key = status * 16384 + smallIndex(this.#methodIndex, method) * 128 + smallIndex(this.#codeIndex, code);
    let cells = this.#counters.get(route);
    if (cells === undefined) this.#counters.set(route, (cells = new Map()));
    let c = cells.get(key);
    if (c === undefined) cells.set(key, (c = requestsTotal.cell(route, method, String(status), code)));
    c.n++;
    let h = this.#durations.get(route);
    if (h === undefined) this.#durations.set(route, (h = requestDuration.labels(route)));
    h.observe(durationMs / 1000);
    inFlight.n--;
    try {
      this.#options.recorder?.record(ctx, status, durationMs);
    } catch (err) {
      this.#options.logger.error({ err }, 'audit recorder failed');
    }
    if (--this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  /** Stops accepting, closes idle keep-alive sockets, lets in-flight requests finish for up to drainMs. */
  async shutdown(drainMs: number): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#server.closeIdleConnections();
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const s of this.#sockets.keys()) s.destroy();
    await closed;
    await this.#forwarder.close();
  }
}

/** A small stable number for a string of a bounded set: HTTP methods (llhttp knows < 50), reason codes (< 30). */
function smallIndex(index: Map<string, number>, value: string): number {
  let i = index.get(value);
  if (i === undefined) index.set(value, (i = index.size));
  return i;
}

let lastHost = '';
let lastHostOnly = '';

/** Host header without port, lower-case ("[::1]:8080" → "[::1]"). */
function hostOnly(host: string): string {
  // Clients send the same Host on every request of a connection: remember the last answer.
  if (host === lastHost) return lastHostOnly;
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && host.indexOf(']', colon) === -1) end = colon;
  const h = end === host.length ? host : host.slice(0, end);
  lastHost = host;
  lastHostOnly = h.toLowerCase();
  return lastHostOnly;
}
