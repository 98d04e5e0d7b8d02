// The HTTP/2 door: h2 over TLS (the TLS listener hands it sockets that chose "h2" by ALPN) and h2c
// with prior knowledge (the cleartext listener's preface sniffing hands it those). It builds the
// same ProxyContext as the HTTP/1.1 door from node:http2's compatibility request, so the engine,
// the door stages (breaker) and the Forwarder are the proxy door's own; what differs is only how
// HTTP/2 is read (pseudo-headers, :authority) and how a refusal is written (gRPC callers get
// trailers-only grpc-status). HTTP/2's abuse cases are bounded by node:http2's settings: stream
// and header-list limits, session memory, rejected-stream and invalid-frame limits, and nghttp2's
// own RST_STREAM (rapid reset) and CONTINUATION flood limits.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { constants, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { RequestRecorder } from '../core/context.js';
import { type Deny, deny, PROBLEM_CONTENT_TYPE, problemBody, statusOf } from '../core/reasons.js';
import { type Answer, type Decision, isAnswer, runStages, type Stage } from '../core/stage.js';
import type { PlanManager } from '../engine/compile.js';
import type { Engine } from '../engine/engine.js';
import { faultContained } from '../observability/faults.js';
import type { TenantLatency } from '../observability/latency.js';
import { gatewayFaultsTotal, inFlight } from '../observability/metrics.js';
import { RequestAccounting } from '../proxy/accounting.js';
import { attemptedTarget } from '../proxy/attempted.js';
import { ProxyContext } from '../proxy/context.js';
import { Forwarder } from '../proxy/forwarder.js';
import { grpcRefusal, grpcTimeoutMs, isGrpc } from './grpc.js';

export interface H2DoorOptions {
  readonly policy: PlanManager;
  readonly engine: Engine;
  /** The door's own stages after the engine allowed the request (the breaker), as for HTTP/1.1. */
  readonly admit: readonly Stage<ProxyContext>[];
  readonly logger: Logger;
  readonly recorder?: RequestRecorder | undefined;
  /** Latency per tenant for the admin API's usage, as the HTTP/1.1 door records it. */
  readonly latency?: TenantLatency | undefined;
  /** Charges metered usage to the tenant once a response ended, as the HTTP/1.1 door does. */
  readonly charger?: { charge(plan: ProxyContext['plan'], tenant: string | undefined, reported: number): number } | undefined;
  /** A session with no open stream for this long is closed (default 60 s). */
  readonly idleTimeoutMs?: number | undefined;
}

/** The HTTP/2 limits; the header-list size matches the HTTP/1.1 door's 16 KiB head. */
const H2_LIMITS = Object.freeze({
  maxConcurrentStreams: 128,
  maxHeaderListSize: 16 * 1024,
  /** MiB of nghttp2 state per session before new streams are refused. */
  maxSessionMemory: 10,
  /** Streams refused for being over the limits before the session is ended (rapid reset). */
  maxSessionRejectedStreams: 100,
  maxSessionInvalidFrames: 100,
});

const GATEWAY_FAULT = deny('GATEWAY_ERROR');
const AUTHORITY_MISMATCH = deny('BAD_REQUEST', 'The Host header and :authority name different hosts.');
const HEADERS_TOO_LARGE = deny('HEADERS_TOO_LARGE');
const DEADLINE = deny('UPSTREAM_TIMEOUT', 'The gRPC deadline (grpc-timeout) passed before the upstream answered.');

type FaultSite = 'request' | 'forward' | 'answer' | 'settle' | 'audit' | 'connection' | 'response';

/** An HTTP/2 request: the proxy door's context, plus what HTTP/2 and gRPC add. */
class H2Context extends ProxyContext {
  readonly stream: Http2ServerRequest['stream'];
  readonly grpc: boolean;
  /** The grpc-timeout timer, when the caller set a deadline. */
  deadline: NodeJS.Timeout | undefined = undefined;
  settled = false;

  constructor(req: Http2ServerRequest, res: Http2ServerResponse, start: number, peer: string, headers: readonly string[], door: H2Door, plan: ProxyContext['plan']) {
    // node:http2's compatibility objects carry every member the Forwarder and upstream-headers use
    // (method, url, rawHeaders, socket, the body stream; writeHead, write, end, 'drain', headersSent,
    // writableFinished, addTrailers, destroy); `gone` below stands in for ServerResponse#destroyed.
    super(req as unknown as IncomingMessage, res as unknown as ServerResponse, plan, start, peer, headers);
    this.stream = req.stream;
    this.grpc = isGrpc(req.headers['content-type']);
    this.endInHead = (status, h) => door.endInHead(this, status, h);
  }

  override get gone(): boolean {
    return this.stream.destroyed || this.stream.closed;
  }
}

export class H2Door {
  readonly #server: Http2Server;
  readonly #options: H2DoorOptions;
  readonly #forwarder: Forwarder;
  readonly #accounting: RequestAccounting;
  readonly #sessions = new Set<ServerHttp2Session>();
  #inFlight = 0;
  #draining = false;
  #drained: (() => void) | undefined;

  constructor(options: H2DoorOptions) {
    this.#options = options;
    this.#accounting = new RequestAccounting(options.logger, options.recorder, options.latency);
    this.#forwarder = new Forwarder(
      (ctx, d) => this.#deny(ctx as H2Context, d),
      (ctx, err) => this.#fault(ctx as H2Context, err, 'forward'),
      options.charger === undefined ? undefined : (ctx, reported) => options.charger!.charge(ctx.plan, ctx.principal?.tenant, reported),
    );
    options.policy.onSwap((plan) => this.#forwarder.retain(plan));
    this.#server = createServer({
      maxSessionMemory: H2_LIMITS.maxSessionMemory,
      maxSessionRejectedStreams: H2_LIMITS.maxSessionRejectedStreams,
      maxSessionInvalidFrames: H2_LIMITS.maxSessionInvalidFrames,
      maxHeaderListPairs: 256,
      settings: {
        enablePush: false,
        maxConcurrentStreams: H2_LIMITS.maxConcurrentStreams,
        maxHeaderListSize: H2_LIMITS.maxHeaderListSize,
      },
    });
    this.#server.setTimeout(options.idleTimeoutMs ?? 60_000);
    this.#server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => this.#request(req, res));
    this.#server.on('session', (session: ServerHttp2Session) => {
      this.#sessions.add(session);
      session.once('close', () => this.#sessions.delete(session));
      // A session error (a protocol violation, a reset socket) ends that session only.
      session.on('error', ignore);
      if (this.#draining) session.close();
    });
    this.#server.on('sessionError', ignore);
  }

  /** Serves HTTP/2 on a connected socket: a TLS socket that chose "h2", or a cleartext one that sent the preface. */
  accept(socket: Socket): void {
    try {
      if (this.#draining) return void socket.destroy();
      socket.on('error', ignore);
      this.#server.emit('connection', socket);
    } catch (err) {
      this.#faultLogged('connection', err);
      socket.destroy();
    }
  }

  #request(req: Http2ServerRequest, res: Http2ServerResponse): void {
    let ctx: H2Context;
    try {
      // The engine reads the headers as HTTP/1.1 spells them: :authority becomes Host when Host is absent.
      const raw = req.rawHeaders;
      const headers: string[] = [];
      let authority: string | undefined;
      let host: string | undefined;
      // Counted as SETTINGS_MAX_HEADER_LIST_SIZE counts (name + value + 32 per field): node:http2
      // advertises the limit but lets a larger list through, so the door enforces it.
      let listSize = 0;
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i]!;
        listSize += name.length + raw[i + 1]!.length + 32;
        if (name.charCodeAt(0) === 58 /* ':' */) {
          if (name === ':authority') authority = raw[i + 1];
          continue;
        }
        if (name === 'host') host = raw[i + 1];
        headers.push(name, raw[i + 1]!);
      }
      if (host === undefined && authority !== undefined) headers.push('host', authority);
      const peer = req.socket.remoteAddress ?? '';
      ctx = new H2Context(req, res, performance.now(), peer, headers, this, this.#options.policy.plan);
      this.#inFlight++;
      inFlight.n++;
      res.on('close', () => this.#settle(ctx));
      res.on('error', onResponseError);
      try {
        const refuse =
          listSize > H2_LIMITS.maxHeaderListSize ? HEADERS_TOO_LARGE : host !== undefined && authority !== undefined && host.toLowerCase() !== authority.toLowerCase() ? AUTHORITY_MISMATCH : undefined;
        this.#begin(ctx, refuse);
      } catch (err) {
        this.#fault(ctx, err, 'request');
      }
    } catch (err) {
      this.#faultLogged('request', err);
      req.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  /** `refuse`: what the door itself refuses (the header list, :authority vs Host), after the engine's preamble. */
  #begin(ctx: H2Context, refuse: Deny | undefined): void {
    const engine = this.#options.engine;
    const prepared = engine.prepare(ctx);
    const refused = refuse === HEADERS_TOO_LARGE ? refuse : (prepared ?? refuse);
    if (refused !== undefined) {
      const t = attemptedTarget(ctx.target);
      ctx.path = t.path;
      ctx.query = t.query;
      return this.#deny(ctx, refused);
    }
    // HTTP/2 frames the body itself: one without Content-Length is streamed and counted like a chunked one.
    if (ctx.contentLength === undefined && !ctx.stream.endAfterHeaders) ctx.chunked = true;
    if (ctx.grpc) {
      const ms = grpcTimeoutMs(ctx.req.headers['grpc-timeout'] as string | undefined);
      if (ms !== undefined) ctx.deadline = setTimeout(deadlinePassed, ms, this, ctx);
    }
    this.#then(ctx, engine.decide(ctx), true);
  }

  #then(ctx: H2Context, outcome: Decision | Promise<Decision>, engine: boolean): void {
    if (outcome instanceof Promise) {
      outcome.then(
        (o) => {
          try {
            this.#then(ctx, o, engine);
          } catch (err) {
            this.#fault(ctx, err, 'request');
          }
        },
        (err: unknown) => this.#fault(ctx, err, 'request'),
      );
      return;
    }
    if (outcome !== null) return isAnswer(outcome) ? this.#answer(ctx, outcome) : this.#deny(ctx, outcome);
    if (engine) return this.#then(ctx, runStages(this.#options.admit, ctx), false);
    if (ctx.gone) return;
    this.#forwarder.forward(ctx, ctx.forwardPath);
  }

  /** The caller's deadline passed: the upstream call is abandoned and the caller told DEADLINE_EXCEEDED. */
  deadlinePassed(ctx: H2Context): void {
    ctx.deadline = undefined;
    try {
      if (ctx.res.headersSent) {
        ctx.code = 'UPSTREAM_TIMEOUT';
        ctx.stream.close(constants.NGHTTP2_CANCEL);
      } else this.#deny(ctx, DEADLINE);
      ctx.upstream?.abort();
    } catch (err) {
      this.#fault(ctx, err, 'forward');
    }
  }

  /** A gRPC trailers-only answer from the upstream, kept one HEADERS frame with END_STREAM. */
  endInHead(ctx: H2Context, status: number, headers: readonly string[]): void {
    const out: Record<string, string | string[] | number> = { ':status': status };
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i]!.toLowerCase();
      const prev = out[name];
      if (prev === undefined) out[name] = headers[i + 1]!;
      else if (Array.isArray(prev)) prev.push(headers[i + 1]!);
      else out[name] = [String(prev), headers[i + 1]!];
    }
    this.#respondEnded(ctx, out);
  }

  /** The gateway's own answer (a CORS preflight): status and headers, no body, nothing forwarded. */
  #answer(ctx: H2Context, a: Answer): void {
    this.endInHead(ctx, a.status, ['x-request-id', ctx.requestId, ...a.headers]);
  }

  #respondEnded(ctx: H2Context, head: Record<string, string | string[] | number>): void {
    const stream = ctx.stream;
    if (stream.destroyed || stream.closed || stream.headersSent) return;
    stream.respond(head, { endStream: true });
    // The response is complete: a body the client is still sending is not wanted (RFC 9113 §8.1).
    if (!ctx.req.complete) stream.close(constants.NGHTTP2_NO_ERROR);
  }

  #deny(ctx: H2Context, d: Deny): void {
    ctx.code = d.code;
    if (ctx.res.headersSent || ctx.gone) return;
    try {
      const limitHeaders = d === GATEWAY_FAULT ? undefined : ctx.limits?.headers;
      if (ctx.grpc) {
        const head: Record<string, string | number> = grpcRefusal(d, ctx.requestId);
        if (d.headers !== undefined) for (const k in d.headers) head[k] = d.headers[k]!;
        if (limitHeaders !== undefined) for (const k in limitHeaders) if (!(k in head)) head[k] = limitHeaders[k]!;
        return this.#respondEnded(ctx, head);
      }
      const body = problemBody(d, ctx.requestId);
      const head: Record<string, string | number> = {
        'content-type': PROBLEM_CONTENT_TYPE,
        'content-length': Buffer.byteLength(body),
        'x-request-id': ctx.requestId,
        'cache-control': 'no-store',
      };
      if (d.headers !== undefined) for (const k in d.headers) head[k] = d.headers[k]!;
      if (head['www-authenticate'] === undefined && statusOf(d.code) === 401) head['www-authenticate'] = ctx.plan.authn.challenge;
      if (limitHeaders !== undefined) for (const k in limitHeaders) if (!(k in head)) head[k] = limitHeaders[k]!;
      const res = ctx.res as unknown as Http2ServerResponse;
      res.writeHead(statusOf(d.code), head);
      res.end(body);
      if (!ctx.req.complete) res.once('finish', () => ctx.stream.close(constants.NGHTTP2_NO_ERROR));
    } catch (err) {
      this.#faultLogged('answer', err, ctx);
      ctx.code = 'GATEWAY_ERROR';
      ctx.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
    }
  }

  #fault(ctx: H2Context, err: unknown, where: FaultSite): void {
    this.#faultLogged(where, err, ctx);
    ctx.code = 'GATEWAY_ERROR';
    if (ctx.res.headersSent) {
      if (!ctx.res.writableFinished) ctx.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.#deny(ctx, GATEWAY_FAULT);
  }

  #faultLogged(where: FaultSite, err: unknown, ctx?: H2Context): void {
    faultContained(this.#options.logger, where, err, { requestId: ctx?.requestId, route: ctx?.route?.name });
  }

  /** Once per request, when its stream closes (answered, reset by the client, or the session ended). */
  #settle(ctx: H2Context): void {
    if (ctx.settled) return;
    ctx.settled = true;
    this.#inFlight--;
    inFlight.n--;
    try {
      clearTimeout(ctx.deadline);
      const durationMs = performance.now() - ctx.start;
      const res = ctx.res;
      const status = res.headersSent ? res.statusCode : 499;
      ctx.admission?.release();
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
    if (this.#inFlight === 0 && this.#drained !== undefined) this.#drained();
  }

  /** Requests still being handled (for tests and the drain). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sends GOAWAY on every session, lets open streams finish for up to drainMs, then closes the rest. */
  async shutdown(drainMs: number): Promise<void> {
    this.#draining = true;
    for (const s of this.#sessions) s.close();
    if (this.#inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, drainMs);
        this.#drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const s of this.#sessions) s.destroy();
    await this.#forwarder.close();
  }
}

function deadlinePassed(door: H2Door, ctx: H2Context): void {
  door.deadlinePassed(ctx);
}

function ignore(): void {}

function onResponseError(this: Http2ServerResponse): void {
  gatewayFaultsTotal.labels('response').inc();
  this.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
}
