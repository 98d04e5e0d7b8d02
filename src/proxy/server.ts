// The proxy listener: node:http with a strict parser and header/body/time limits. Per request it
// builds the ProxyContext, establishes who the client is and the canonical path, runs the
// stages, and either answers a Deny as problem+json or forwards. When the response ends (finish,
// client abort or error) it settles exactly once: concurrency slot, metrics, audit record.
// Every way in (a request, an upgrade, a parser refusal, a connection, the forwarder's callbacks,
// the settle) contains its own exceptions: a fault ends that request (500 GATEWAY_ERROR, or the
// connection closed once nothing can be answered any more), is logged, counted and audited as not
// allowed, and never ends the process.
import { createServer, IncomingMessage, type Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RequestRecorder } from '../core/context.js';
import type { Plan } from '../core/plan.js';
import { type Deny, deny, PROBLEM_CONTENT_TYPE, problemBody, REASONS, type ReasonCode, statusOf } from '../core/reasons.js';
import { type Answer, type Decision, isAnswer, runStages, type Stage } from '../core/stage.js';
import type { PlanManager } from '../engine/compile.js';
import { BAD_FRAMING, type Engine } from '../engine/engine.js';
import { listenOn } from '../listen.js';
import { faultContained } from '../observability/faults.js';
import type { TenantLatency } from '../observability/latency.js';
import { gatewayFaultsTotal, inFlight } from '../observability/metrics.js';
import { newRequestId } from '../observability/request-id.js';
import { MARK } from '../observability/trace-sampler.js';
import { RequestAccounting } from './accounting.js';
import { attemptedFromPacket, attemptedTarget } from './attempted.js';
import { ProxyContext } from './context.js';
import { Forwarder } from './forwarder.js';
import { forwardUpgrade, upgradeResponse } from './websocket.js';

export interface ProxyServerOptions {
  readonly policy: PlanManager;
  readonly engine: Engine;
  /** The door's own stages, after the engine allowed the request (the breaker): they need the upstream. */
  readonly admit: readonly Stage<ProxyContext>[];
  readonly logger: Logger;
  readonly recorder?: RequestRecorder | undefined;
  /** Latency per tenant for the admin API's usage (this replica, recent requests). */
  readonly latency?: TenantLatency | undefined;
  /** Charges metered usage to the tenant once a response ended; without it, tokens are only recorded. */
  readonly charger?: { charge(plan: Plan, tenant: string | undefined, reported: number): number } | undefined;
  /** Whole-request limit for slow clients (default 60 s). */
  readonly requestTimeoutMs?: number | undefined;
}

/** Where a contained fault was caught: the `where` label of portcullis_gateway_faults_total. */
type FaultSite = 'request' | 'upgrade' | 'forward' | 'answer' | 'settle' | 'audit' | 'client_error' | 'connection' | 'response';

const GATEWAY_FAULT = deny('GATEWAY_ERROR');
const BAD_EXPECT = deny('BAD_REQUEST', 'Only "Expect: 100-continue" is supported.');

/**
 * One client connection. Node parses pipelined requests ahead of their responses, so the
 * connection knows how many of its responses are still open; a WebSocket upgrade or a parser
 * refusal writes straight to the socket and must wait until those are done.
 */
interface Connection {
  /** The peer address, read once per connection rather than per request. */
  readonly peer: string | undefined;
  /** Requests handled on this connection that have not settled yet, oldest first. */
  readonly open: ProxyContext[];
  /** This connection closes after its current response: requests parsed after it are not served. */
  closing: boolean;
  /** A parser refusal was answered (or is waiting to be): further parser errors are the same one. */
  refused: boolean;
  /** Runs once `open` is back to 0: a waiting upgrade, or a parser refusal's answer. */
  whenIdle: (() => void) | undefined;
}

export class ProxyServer {
  readonly #server: Server;
  readonly #options: ProxyServerOptions;
  readonly #forwarder: Forwarder;
  readonly #accounting: RequestAccounting;
  /** Open client connections. */
  readonly #conns = new Map<Socket, Connection>();
  #inFlight = 0;
  #draining = false;
  #drained: (() => void) | undefined;

  constructor(options: ProxyServerOptions) {
    this.#options = options;
    this.#accounting = new RequestAccounting(options.logger, options.recorder, options.latency);
    this.#forwarder = new Forwarder(
      (ctx, d) => this.#deny(ctx, d),
      (ctx, err) => this.#fault(ctx, err, 'forward'),
      options.charger === undefined ? undefined : (ctx, reported) => options.charger!.charge(ctx.plan, ctx.principal?.tenant, reported),
    );
    options.policy.onSwap((plan) => this.#forwarder.retain(plan));
    this.#server = createServer(
      {
        insecureHTTPParser: false,
        maxHeaderSize: 16 * 1024,
        requestTimeout: options.requestTimeoutMs ?? 60_000,
        headersTimeout: 10_000,
        keepAliveTimeout: 5_000,
        // Refused by #handle instead, so that a request without Host is audited like any refusal.
        requireHostHeader: false,
        joinDuplicateHeaders: false,
      },
      (req, res) => this.#request(req, res, false),
    );
    // Expect: 100-continue gets its 100 only once every stage has allowed the request.
    this.#server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.#request(req, res, true));
    this.#server.on('checkExpectation', (req: IncomingMessage, res: ServerResponse) => this.#request(req, res, false, undefined, BAD_EXPECT));
    // Upgrades (WebSockets) run the same stages; websocket.ts answers on the raw socket.
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.#upgrade(req, socket, head));
    this.#server.on('connection', (s: Socket) => {
      try {
        const conn = this.#track(s);
        s.once('close', () => {
          this.#conns.delete(s);
          // Node 20 never closes a pipelined response still queued behind the one the socket died
          // with: settle those here (after Node's own 'close' listeners have run), or their slots,
          // metrics and audit events would never be released.
          if (conn.open.length > 0) setImmediate(() => this.#settleAll(conn));
        });
      } catch (err) {
        this.#faultLogged('connection', err);
        s.destroy();
      }
    });
    this.#server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
      try {
        this.#clientError(err, socket);
      } catch (e) {
        this.#faultLogged('client_error', e);
        socket.destroy();
      }
    });
  }

  get server(): Server {
    return this.#server;
  }

  listen(host: string, port: number): Promise<string> {
    return listenOn(this.#server, host, port);
  }

  #track(socket: Socket): Connection {
    const conn: Connection = { peer: socket.remoteAddress, open: [], closing: false, refused: false, whenIdle: undefined };
    this.#conns.set(socket, conn);
    return conn;
  }

  /** A socket the 'connection' event did not announce (a server emitted into by hand) is tracked all the same. */
  #connection(socket: Socket): Connection {
    return this.#conns.get(socket) ?? this.#track(socket);
  }

  #settleAll(conn: Connection): void {
    for (const ctx of [...conn.open]) this.#settle(ctx, conn);
  }

  /** The 'request' / 'checkContinue' / 'checkExpectation' entry: nothing thrown below leaves it. */
  #request(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, upgradeHead?: Buffer, refuse?: Deny): void {
    try {
      this.#handle(req, res, expectContinue, upgradeHead, refuse);
    } catch (err) {
      // Only reached when the context could not even be built: answer bare, or close.
      this.#faultLogged(upgradeHead === undefined ? 'request' : 'upgrade', err);
      try {
        if (res.headersSent) res.destroy();
        else {
          res.shouldKeepAlive = false;
          res.writeHead(500, { 'content-type': PROBLEM_CONTENT_TYPE, connection: 'close' }).end(problemBody(GATEWAY_FAULT, ''));
        }
      } catch {
        req.socket.destroy();
      }
    }
  }

  #handle(req: IncomingMessage, res: ServerResponse, expectContinue: boolean, upgradeHead: Buffer | undefined, refuse: Deny | undefined): void {
    const conn = this.#connection(req.socket);
    // Parsed after a response this connection closes with (a refusal, a drain): never served, as if never read.
    if (conn.closing) return;
    const ctx = new ProxyContext(req, res, this.#options.policy.plan, performance.now(), conn.peer ?? req.socket.remoteAddress ?? '');
    this.#inFlight++;
    inFlight.n++;
    conn.open.push(ctx);
    // `on`, not `once`: the response is never reused, and `once` costs a wrapper per request.
    res.on('close', () => this.#settle(ctx, conn));
    // A ServerResponse 'error' without a listener would be thrown from the event loop.
    res.on('error', onResponseError);
    try {
      this.#begin(ctx, conn, expectContinue, upgradeHead, refuse);
    } catch (err) {
      this.#fault(ctx, err, upgradeHead === undefined ? 'request' : 'upgrade');
    }
  }

  #begin(ctx: ProxyContext, conn: Connection, expectContinue: boolean, upgradeHead: Buffer | undefined, refuse: Deny | undefined): void {
    if (this.#draining) this.#lastOnConnection(ctx, conn);
    const engine = this.#options.engine;
    const refused = engine.prepare(ctx) ?? refuse;
    if (refused !== undefined) return this.#refuse(ctx, conn, refused);
    this.#then(ctx, engine.decide(ctx), true, expectContinue, upgradeHead);
  }

  /** Continues with a decision: the engine's (then the door's own stages run), or the door's. */
  #then(ctx: ProxyContext, outcome: Decision | Promise<Decision>, engine: boolean, expectContinue: boolean, upgradeHead: Buffer | undefined): void {
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => this.#decided(ctx, o, engine, expectContinue, upgradeHead),
        (err: unknown) => this.#fault(ctx, err, upgradeHead === undefined ? 'request' : 'upgrade'),
      );
      return;
    }
    if (outcome !== null) return isAnswer(outcome) ? this.#answer(ctx, outcome) : this.#deny(ctx, outcome);
    if (engine) return this.#then(ctx, runStages(this.#options.admit, ctx), false, expectContinue, upgradeHead);
    this.#forward(ctx, expectContinue, upgradeHead);
  }

  /** An asynchronous decision. Runs in a promise callback: a throw here must not become an unhandled rejection. */
  #decided(ctx: ProxyContext, o: Decision, engine: boolean, expectContinue: boolean, upgradeHead: Buffer | undefined): void {
    try {
      this.#then(ctx, o, engine, expectContinue, upgradeHead);
    } catch (err) {
      this.#fault(ctx, err, upgradeHead === undefined ? 'request' : 'upgrade');
    }
  }

  /** Refused before routing: the event records the target as sent (bounded), since there is no canonical one. */
  #refuse(ctx: ProxyContext, conn: Connection, d: Deny): void {
    const t = attemptedTarget(ctx.req.url ?? '');
    ctx.path = t.path;
    ctx.query = t.query;
    if (d === BAD_FRAMING) this.#lastOnConnection(ctx, conn);
    this.#deny(ctx, d);
  }

  /** This request's response is the connection's last: `Connection: close`, and nothing parsed after it is served. */
  #lastOnConnection(ctx: ProxyContext, conn: Connection): void {
    if (ctx.res.headersSent) return;
    ctx.res.shouldKeepAlive = false;
    conn.closing = true;
  }

  #forward(ctx: ProxyContext, expectContinue: boolean, upgradeHead?: Buffer): void {
    if (ctx.res.destroyed) return;
    if (upgradeHead !== undefined) {
      if (ctx.span !== undefined) ctx.span.marks[MARK.upstreamStart] = performance.now();
      return forwardUpgrade(
        ctx,
        ctx.forwardPath,
        upgradeHead,
        (c, d) => this.#deny(c, d),
        (c, err) => this.#fault(c, err, 'upgrade'),
      );
    }
    if (expectContinue) ctx.res.writeContinue();
    this.#forwarder.forward(ctx, ctx.forwardPath);
  }

  /**
   * Something threw while handling `ctx`: a bug or an infrastructure fault. Logged in full and
   * counted; the client gets 500 GATEWAY_ERROR without details, or, once the response has started,
   * the connection closes (a truncated response is detectable, a wrong one is not). Never throws.
   */
  #fault(ctx: ProxyContext, err: unknown, where: FaultSite): void {
    this.#faultLogged(where, err, ctx);
    ctx.code = 'GATEWAY_ERROR';
    const res = ctx.res;
    if (res.headersSent) {
      if (!res.writableFinished) res.destroy();
      return;
    }
    this.#deny(ctx, GATEWAY_FAULT);
  }

  /** Logs and counts a contained fault. Never throws. */
  #faultLogged(where: FaultSite, err: unknown, ctx?: ProxyContext): void {
    faultContained(this.#options.logger, where, err, { requestId: ctx?.requestId, route: ctx?.route?.name });
  }

  /** Answers a Deny as problem+json. A throw while answering closes the connection instead. */
  #deny(ctx: ProxyContext, d: Deny): void {
    ctx.code = d.code;
    const res = ctx.res;
    if (res.headersSent || res.destroyed) return;
    try {
      const body = problemBody(d, ctx.requestId);
      const headers: Record<string, string | number> = {
        'content-type': PROBLEM_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        'x-request-id': ctx.requestId,
        'cache-control': 'no-store',
      };
      if (d.headers !== undefined) for (const k in d.headers) headers[k] = d.headers[k]!;
      // RFC 9110: a 401 names how to authenticate. Authenticators' denials carry their challenge;
      // this covers any 401 built without one, so no client is left without a way to retry.
      if (headers['www-authenticate'] === undefined && statusOf(d.code) === 401) headers['www-authenticate'] = ctx.plan.authn.challenge;
      // A fault's answer carries nothing the failed request computed: that state may be what broke.
      const limitHeaders = d === GATEWAY_FAULT ? undefined : ctx.limits?.headers;
      if (limitHeaders !== undefined) for (const k in limitHeaders) if (!(k in headers)) headers[k] = limitHeaders[k]!;
      // CORS: a browser script can read a denial (401, 429) only when it carries these too.
      const answerHeaders = d === GATEWAY_FAULT ? undefined : ctx.responseHeaders;
      if (answerHeaders !== undefined) for (let i = 0; i < answerHeaders.length; i += 2) if (!(answerHeaders[i]! in headers)) headers[answerHeaders[i]!] = answerHeaders[i + 1]!;
      // An unread request body (denied before reading it) would otherwise be parsed as the next request.
      if (!res.shouldKeepAlive || (!ctx.req.complete && (ctx.contentLength !== undefined || ctx.chunked))) {
        headers.connection = 'close';
        const conn = this.#conns.get(ctx.req.socket);
        if (conn !== undefined) this.#lastOnConnection(ctx, conn);
        else res.shouldKeepAlive = false;
      }
      // The reason phrase is the problem's title: Node's own says 'Payload Too Large' for 413.
      res.writeHead(statusOf(d.code), REASONS[d.code].title, headers);
      res.end(body);
    } catch (err) {
      this.#faultLogged('answer', err, ctx);
      ctx.code = 'GATEWAY_ERROR';
      res.destroy();
    }
  }

  /** The gateway's own answer (a CORS preflight): status and headers, no body, nothing forwarded. */
  #answer(ctx: ProxyContext, a: Answer): void {
    const res = ctx.res;
    if (res.headersSent || res.destroyed) return;
    try {
      const headers: string[] = ['x-request-id', ctx.requestId, ...a.headers];
      // An unread request body would otherwise be parsed as the next request.
      if (!res.shouldKeepAlive || (!ctx.req.complete && (ctx.contentLength !== undefined || ctx.chunked))) {
        headers.push('connection', 'close');
        const conn = this.#conns.get(ctx.req.socket);
        if (conn !== undefined) this.#lastOnConnection(ctx, conn);
        else res.shouldKeepAlive = false;
      }
      res.writeHead(a.status, headers);
      res.end();
    } catch (err) {
      this.#faultLogged('answer', err, ctx);
      ctx.code = 'GATEWAY_ERROR';
      res.destroy();
    }
  }

  /**
   * The parser refused what arrived, or a socket failed. A parse error about a request already in
   * flight (its body) ends that request; one about a new request is answered (after the responses
   * still owed on this connection), audited with what it attempted, and the connection closed.
   */
  #clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const conn = this.#connection(socket);
    const code = err.code ?? '';
    const parse = code.startsWith('HPE_');
    const timeout = code === 'ERR_HTTP_REQUEST_TIMEOUT';
    if ((!parse && !timeout) || conn.refused) {
      // A socket error (reset, broken pipe), or the parser failing again on the rest of a refused stream.
      if (!conn.refused || !socket.writable) socket.destroy();
      return;
    }
    conn.refused = true;
    conn.closing = true;
    // Bytes after a message that closes the connection: not a request, they are never read.
    if (code === 'HPE_CLOSED_CONNECTION') {
      if (conn.open.length === 0) socket.destroySoon();
      return;
    }
    const current = conn.open[conn.open.length - 1];
    if (current !== undefined && !current.req.complete) {
      // The body of a request being handled is malformed or too slow: that request's event says so.
      current.code = timeout ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
      socket.destroy();
      return;
    }
    const reason: ReasonCode = code === 'HPE_HEADER_OVERFLOW' ? 'HEADERS_TOO_LARGE' : timeout ? 'REQUEST_TIMEOUT' : 'BAD_REQUEST';
    const start = performance.now();
    const attempt = timeout ? undefined : attemptedFromPacket((err as { rawPacket?: Buffer }).rawPacket, (err as { bytesParsed?: number }).bytesParsed);
    const answer = (): void => {
      try {
        this.#answerRefusal(socket, conn, reason, attempt?.method ?? '', attempt?.path ?? '', attempt?.query ?? '', start);
      } catch (e) {
        this.#faultLogged('client_error', e);
        socket.destroy();
      }
    };
    if (conn.open.length === 0) answer();
    else conn.whenIdle = answer;
  }

  #answerRefusal(socket: Socket, conn: Connection, code: ReasonCode, method: string, path: string, query: string, start: number): void {
    // The parser produced no request: a stand-in carries what was attempted to the metrics and the audit trail.
    const req = new IncomingMessage(socket);
    req.method = method;
    req.url = path + query;
    const peer = conn.peer ?? socket.remoteAddress ?? '';
    const ctx = new ProxyContext(req, new ServerResponse(req), this.#options.policy.plan, start, peer);
    ctx.requestId = newRequestId();
    ctx.peerIp = ctx.clientIp = peer;
    ctx.path = path;
    ctx.query = query;
    ctx.code = code;
    const status = statusOf(code);
    if (socket.writable) {
      const body = problemBody(deny(code, code === 'BAD_REQUEST' ? 'The request could not be parsed.' : undefined), ctx.requestId);
      socket.end(
        `HTTP/1.1 ${status} ${REASONS[code].title}\r\ncontent-type: ${PROBLEM_CONTENT_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
          `x-request-id: ${ctx.requestId}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`,
      );
      // Whatever the client still sends is not read: end() alone would wait for the client to close.
      socket.destroySoon();
    } else {
      socket.destroy();
    }
    this.#accounting.record(ctx, status, performance.now() - start, ctx.res.writableFinished);
  }

  /** A WebSocket upgrade: handled once every response owed on its connection has been written. */
  #upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    try {
      // Node has detached its own listeners from the socket: an 'error' with none would be thrown.
      socket.on('error', destroySocket);
      const conn = this.#connection(socket);
      if (conn.closing) return void socket.destroy();
      // A pipelined upgrade must not take over the socket while an earlier response still writes to it.
      if (conn.open.length > 0) conn.whenIdle = () => this.#startUpgrade(req, socket, head, conn);
      else this.#startUpgrade(req, socket, head, conn);
    } catch (err) {
      this.#faultLogged('upgrade', err);
      socket.destroy();
    }
  }

  #startUpgrade(req: IncomingMessage, socket: Socket, head: Buffer, conn: Connection): void {
    if (socket.destroyed || conn.closing) return void socket.destroy();
    let res: ServerResponse;
    try {
      res = upgradeResponse(req, socket);
    } catch (err) {
      this.#faultLogged('upgrade', err);
      return void socket.destroy();
    }
    this.#request(req, res, false, head);
  }

  #settle(ctx: ProxyContext, conn: Connection): void {
    // Exactly once: a context leaves `open` when it settles (responses settle in order, so it is the first).
    const open = conn.open;
    if (open[0] === ctx) open.shift();
    else {
      const i = open.indexOf(ctx);
      if (i < 0) return;
      open.splice(i, 1);
    }
    // Bookkeeping first, so that a fault below cannot leave the drain or a waiting upgrade hanging.
    this.#inFlight--;
    inFlight.n--;
    try {
      const durationMs = performance.now() - ctx.start;
      const res = ctx.res;
      const status = res.headersSent ? res.statusCode : 499; // 499: the client went away first
      ctx.admission?.release(); // breaker probe slot of a request that ended without an upstream answer
      if (!res.writableFinished) ctx.upstream?.abort();
      const release = ctx.limits?.release;
      if (release !== undefined) {
        ctx.limits!.release = undefined;
        release();
      }
      this.#accounting.record(ctx, status, durationMs, res.writableFinished);
    } catch (err) {
      this.#faultLogged('settle', err, ctx);
    }
    if (open.length === 0) {
      const next = conn.whenIdle;
      conn.whenIdle = undefined;
      if (next !== undefined) next();
      else if (this.#draining) this.#server.closeIdleConnections();
    }
    if (this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  /**
   * Stops accepting, closes idle keep-alive connections and marks the responses still to be written
   * `Connection: close`, lets in-flight requests finish for up to drainMs, then closes the rest.
   */
  async shutdown(drainMs: number): Promise<void> {
    this.#draining = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const conn of this.#conns.values()) {
      const last = conn.open[conn.open.length - 1];
      if (last !== undefined) this.#lastOnConnection(last, conn);
    }
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
    for (const s of this.#conns.keys()) s.destroy();
    await closed;
    await this.#forwarder.close();
  }
}

function destroySocket(this: Socket): void {
  this.destroy();
}

function onResponseError(this: ServerResponse): void {
  gatewayFaultsTotal.labels('response').inc();
  this.destroy();
}
