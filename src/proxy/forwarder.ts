// Forwarding with undici: one keep-alive Pool per upstream target, both bodies streamed with
// backpressure (never buffered), a client abort cancels the upstream request. Pools outlive Plan
// swaps: they are keyed by origin and settings, and closed once no Plan refers to them.
import { type buildConnector, type Dispatcher, errors, Pool } from 'undici';
import type { Plan } from '../core/plan.js';
import { type Deny, deny } from '../core/reasons.js';
import { upstreamDuration } from '../observability/metrics.js';
import { MARK } from '../observability/trace-sampler.js';
import type { UpstreamPlan, UpstreamTarget } from '../upstream/compile.js';
import { BodyTooLargeError, requestBody, TOO_LARGE } from './body-limit.js';
import type { ProxyContext } from './context.js';
import { retryAdmission } from './retry.js';
import { clientResponseHeadersRaw, upstreamRequestHeaders } from './upstream-headers.js';
import { UsageMeter } from './usage-meter.js';

/** How the forwarder tells the server that nothing reached the client and it must answer. */
export type ForwardFailure = (ctx: ProxyContext, d: Deny) => void;
/** How the forwarder hands the server an exception thrown in one of its callbacks (a bug: never an upstream fault). */
export type ForwardFault = (ctx: ProxyContext, err: unknown) => void;
/** Charges what a metered response reported once it ended; returns the tokens charged. */
export type ForwardCharge = (ctx: ProxyContext, reported: number) => number;

const TIMEOUT = deny('UPSTREAM_TIMEOUT');
const UNREACHABLE = deny('UPSTREAM_ERROR');
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

interface PoolEntry {
  readonly pool: Pool;
  readonly histogram: { observe(v: number): void };
  /** Set when retain() closed the pool: a request still on an older Plan gets a fresh entry. */
  closed: boolean;
}

const poolKey = (up: UpstreamPlan, target: UpstreamTarget): string => `${target.origin}|${up.connections}|${up.connectTimeoutMs}|${up.responseTimeoutMs}|${up.name}|${up.protocol}`;

export class Forwarder {
  readonly #pools = new Map<string, PoolEntry>();
  /** The entry of each target object of a Plan, so the per-request lookup builds no key string. */
  readonly #byTarget = new WeakMap<UpstreamTarget, PoolEntry>();
  readonly #onFailure: ForwardFailure;
  readonly #onFault: ForwardFault;
  readonly #onCharge: ForwardCharge | undefined;

  constructor(onFailure: ForwardFailure, onFault: ForwardFault, onCharge?: ForwardCharge) {
    this.#onFailure = onFailure;
    this.#onFault = onFault;
    this.#onCharge = onCharge;
  }

  #entry(up: UpstreamPlan, target: UpstreamTarget): PoolEntry {
    const cached = this.#byTarget.get(target);
    if (cached !== undefined && !cached.closed) return cached;
    const key = poolKey(up, target);
    let e = this.#pools.get(key);
    if (e === undefined) {
      const pool = new Pool(target.origin, {
        connections: up.connections,
        // h2 is offered by ALPN over TLS; h2c has no negotiation, so the connector marks the
        // cleartext socket as h2 (prior knowledge), which gRPC servers expect.
        allowH2: up.protocol !== 'http1',
        connect: up.protocol === 'h2c' ? ({ timeout: up.connectTimeoutMs, useH2c: true } as buildConnector.BuildOptions) : { timeout: up.connectTimeoutMs },
        // The response timeout is the handler's own timer: undici runs timeouts above 1 s on a
        // 499 ms tick, so a 2 s timeout fired anywhere from 2.0 to 2.5 s (and 1.2 s from 1.0 s).
        headersTimeout: 0,
        bodyTimeout: up.responseTimeoutMs,
        keepAliveTimeout: 4_000,
      });
      e = { pool, histogram: upstreamDuration.labels(up.name), closed: false };
      this.#pools.set(key, e);
    }
    this.#byTarget.set(target, e);
    return e;
  }

  /** Closes pools that no upstream of `plan` uses any more (after a reload). */
  retain(plan: Plan): void {
    const live = new Set<string>();
    for (const up of plan.upstreams.values()) {
      for (const t of up.targets) live.add(poolKey(up, t));
    }
    for (const [key, e] of this.#pools) {
      if (!live.has(key)) {
        this.#pools.delete(key);
        e.closed = true;
        void e.pool.close().catch(() => undefined);
      }
    }
  }

  forward(ctx: ProxyContext, forwardPath: string, target?: UpstreamTarget, attempt = 0): void {
    // A sampled request's upstream span starts with the first attempt, whichever door forwards it.
    if (attempt === 0 && ctx.span !== undefined) ctx.span.marks[MARK.upstreamStart] = performance.now();
    const up = ctx.plan.upstreams.get(ctx.route!.upstream)!;
    // The breaker stage picked the target (round robin, open targets skipped).
    const t = target ?? ctx.admission?.handle.target ?? up.targets[0]!;
    const entry = this.#entry(up, t);
    const req = ctx.req;
    const hasBody = ctx.contentLength !== undefined ? ctx.contentLength !== '0' : ctx.chunked;
    const responseTimeoutMs = ctx.plan.routeTimeouts[ctx.route!.index] ?? up.responseTimeoutMs;
    const handler = new ResponseHandler(ctx, entry.histogram, this, forwardPath, attempt, hasBody, responseTimeoutMs, up.usage === undefined ? undefined : new UsageMeter(up.usage));
    ctx.upstream = handler;
    entry.pool.dispatch(
      {
        origin: t.origin,
        path: t.basePath + forwardPath + ctx.query,
        method: req.method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(ctx, undefined), // undici writes the pool origin's Host
        body: hasBody ? requestBody(ctx) : null, // counted against maxBodySize when chunked
        bodyTimeout: responseTimeoutMs, // routes[].timeouts.response, else the pool's (the upstream's)
      },
      handler,
    );
  }

  /** Retries (src/upstream/retry.ts): only when nothing reached the upstream. */
  retry(ctx: ProxyContext, err: Error, forwardPath: string, attempt: number, hasBody: boolean): boolean {
    if (retryAdmission(ctx, err, attempt, hasBody) === undefined) return false;
    this.forward(ctx, forwardPath, undefined, attempt + 1);
    return true;
  }

  failed(ctx: ProxyContext, d: Deny): void {
    this.#onFailure(ctx, d);
  }

  fault(ctx: ProxyContext, err: unknown): void {
    this.#onFault(ctx, err);
  }

  charge(ctx: ProxyContext, reported: number): void {
    ctx.tokens = this.#onCharge === undefined ? reported : this.#onCharge(ctx, reported);
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((e) => e.pool.close().catch(() => undefined)));
  }
}

/**
 * Streams one upstream response to the client. One object per request: no closures. It speaks
 * undici's raw handler protocol (onConnect/onHeaders/onData/onComplete/onError), the one undici's
 * clients call internally: the newer onRequestStart/onResponseStart form is wrapped by an adapter
 * that parses every response header into an object we would only turn back into an array.
 */
class ResponseHandler implements Dispatcher.DispatchHandler {
  readonly #ctx: ProxyContext;
  readonly #histogram: { observe(v: number): void };
  readonly #forwarder: Forwarder;
  readonly #forwardPath: string;
  readonly #attempt: number;
  readonly #hasBody: boolean;
  #abort: ((err?: Error) => void) | undefined;
  #done = false;
  #resume: (() => void) | undefined;
  /** Body bytes still to come when the upstream declared a Content-Length (-1: not declared). */
  #remaining = -1;
  /** The last chunk already ended the client response (Content-Length reached). */
  #ended = false;
  readonly #responseTimeoutMs: number;
  /** Fires when the upstream's response head is late (upstreams.<name>.timeouts.response). */
  #timer: NodeJS.Timeout | undefined;
  /** Reads the usage the upstream reports (metered upstreams only); cleared once charged. */
  #meter: UsageMeter | undefined;

  constructor(
    ctx: ProxyContext,
    histogram: { observe(v: number): void },
    forwarder: Forwarder,
    forwardPath: string,
    attempt: number,
    hasBody: boolean,
    responseTimeoutMs: number,
    meter: UsageMeter | undefined,
  ) {
    this.#meter = meter;
    this.#ctx = ctx;
    this.#histogram = histogram;
    this.#forwarder = forwarder;
    this.#forwardPath = forwardPath;
    this.#attempt = attempt;
    this.#hasBody = hasBody;
    this.#responseTimeoutMs = responseTimeoutMs;
  }

  /** The client went away (the server calls this from its one 'close' listener): stop the upstream request too. */
  abort(): void {
    // Before the audit record the server writes next: charged what was reported by now.
    this.#charge(false);
    if (!this.#done) this.#abort?.(new Error('client closed the connection'));
  }

  /** Charges the metered usage, once: when the response ended, or as far as it got. */
  #charge(ended: boolean): void {
    const meter = this.#meter;
    if (meter === undefined) return;
    this.#meter = undefined;
    this.#forwarder.charge(this.#ctx, meter.tokens(ended));
  }

  // undici calls these from its socket callbacks. It turns a throw from onHeaders/onData into an
  // upstream error (a bug would then pass for UPSTREAM_ERROR and be retried) and does not catch
  // one from onConnect or onError at all: each catches its own and reports it as a gateway fault.

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
    try {
      if (this.#ctx.gone) abort(new Error('client closed the connection'));
      // Counted from when undici writes the request, as its own headersTimeout was.
      else this.#timer = setTimeout(responseTimedOut, this.#responseTimeoutMs, this);
    } catch (err) {
      this.#fault(err);
    }
  }

  /** The response head did not come in time: abort as undici's headers timeout did (504, never retried). */
  timedOut(): void {
    this.#timer = undefined;
    if (!this.#done) this.#abort?.(new errors.HeadersTimeoutError());
  }

  #fault(err: unknown): void {
    this.#done = true;
    try {
      this.#abort?.(new Error('gateway fault'));
    } catch {
      // The upstream request is torn down with the client response in any case.
    }
    this.#forwarder.fault(this.#ctx, err);
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    try {
      return this.#onHeaders(statusCode, rawHeaders, resume);
    } catch (err) {
      this.#fault(err);
      return false;
    }
  }

  #onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    clearTimeout(this.#timer);
    const ctx = this.#ctx;
    this.#histogram.observe((performance.now() - ctx.start) / 1000);
    ctx.admission?.settle(statusCode); // circuit breaker outcome
    const head = clientResponseHeadersRaw(this.#meter === undefined ? rawHeaders : this.#meter.head(rawHeaders), ctx.requestId, ctx.limits?.headers, ctx);
    this.#remaining = ctx.req.method === 'HEAD' || statusCode === 204 || statusCode === 304 ? -1 : head.contentLength;
    if (ctx.endInHead !== undefined && isTrailersOnly(head.headers)) {
      this.#ended = true;
      ctx.endInHead(statusCode, head.headers);
      return true;
    }
    ctx.res.writeHead(statusCode, head.headers);
    this.#resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    try {
      return this.#onData(chunk);
    } catch (err) {
      this.#fault(err);
      return false;
    }
  }

  #onData(chunk: Buffer): boolean {
    if (this.#ended) return true; // a trailers-only answer has no body to carry
    this.#meter?.data(chunk);
    const res = this.#ctx.res;
    // The chunk that completes a declared length ends the response in the same call: one write, no
    // extra tick to uncork the socket.
    if (this.#remaining > 0 && (this.#remaining -= chunk.length) === 0) {
      this.#ended = true;
      res.end(chunk);
      return true;
    }
    if (res.write(chunk)) return true;
    res.once('drain', this.#resume!);
    return false;
  }

  /** `trailers`: undici's HTTP/1.1 client gives raw name/value pairs, its HTTP/2 client node:http2's header object. */
  onComplete(trailers: readonly (string | Buffer)[] | Readonly<Record<string, string | string[] | undefined>> | null): void {
    this.#done = true;
    upstreamEnded(this.#ctx);
    try {
      // Trailers (gRPC's grpc-status) reach an HTTP/2 client; an HTTP/1.1 response keeps its framing as before.
      if (trailers != null && this.#ctx.httpVersion === '2.0') this.#ctx.res.addTrailers(trailerObject(trailers));
      if (this.#meter !== undefined) {
        this.#meter.trailers(trailerPairs(trailers));
        this.#charge(true);
      }
      if (!this.#ended) this.#ctx.res.end();
    } catch (err) {
      this.#forwarder.fault(this.#ctx, err);
    }
  }

  onError(err: Error): void {
    clearTimeout(this.#timer);
    upstreamEnded(this.#ctx);
    if (this.#done) return; // after #fault: the abort it caused reports back here
    this.#done = true;
    try {
      // Cut short: what the upstream reported before it failed (a retry meters afresh).
      if (this.#ctx.res.headersSent) this.#charge(false);
      this.#onError(err);
    } catch (e) {
      this.#forwarder.fault(this.#ctx, e);
    }
  }

  #onError(err: Error): void {
    const ctx = this.#ctx;
    const res = ctx.res;
    if (ctx.gone) {
      ctx.admission?.release(); // no outcome: the client aborted, not the upstream's fault
      return; // the client aborted: nobody to answer
    }
    if (res.headersSent) {
      res.destroy(err);
      return;
    }
    if (err instanceof BodyTooLargeError) {
      ctx.admission?.release(); // the client's fault, not the upstream's
      this.#forwarder.failed(ctx, TOO_LARGE);
      return;
    }
    if (this.#forwarder.retry(ctx, err, this.#forwardPath, this.#attempt, this.#hasBody)) return;
    ctx.admission?.fail();
    const code = (err as { code?: string }).code;
    this.#forwarder.failed(ctx, code !== undefined && TIMEOUT_CODES.has(code) ? TIMEOUT : UNREACHABLE);
  }
}

/** A gRPC trailers-only response: its status is in the head (gRPC over HTTP/2 spec). */
function isTrailersOnly(headers: readonly string[]): boolean {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'grpc-status') return true;
  return false;
}

/** Trailers as raw name/value pairs, whichever form undici handed them in (the meter reads pairs). */
function trailerPairs(raw: readonly (string | Buffer)[] | Readonly<Record<string, string | string[] | undefined>> | null): readonly (string | Buffer)[] | null {
  if (raw === null || Array.isArray(raw)) return raw as readonly (string | Buffer)[] | null;
  const out: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */) continue;
    for (const one of Array.isArray(v) ? v : [v]) out.push(k, one);
  }
  return out;
}

/** Trailers as undici hands them, minus any a client must not receive. */
function trailerObject(raw: readonly (string | Buffer)[] | Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const put = (name: string, value: string | string[] | undefined): void => {
    const lower = name.toLowerCase();
    if (value === undefined || lower.charCodeAt(0) === 58 /* ':' */ || lower === 'connection' || lower === 'transfer-encoding') return;
    out[lower] = value;
  };
  if (Array.isArray(raw)) {
    const pairs = raw as readonly (string | Buffer)[];
    for (let i = 0; i + 1 < pairs.length; i += 2) put(pairs[i]!.toString('latin1'), pairs[i + 1]!.toString('latin1'));
  } else for (const [k, v] of Object.entries(raw)) put(k, v);
  return out;
}

/** The end of a sampled request's upstream span (a retry's later end overwrites it). */
function upstreamEnded(ctx: ProxyContext): void {
  if (ctx.span !== undefined) ctx.span.marks[MARK.upstreamEnd] = performance.now();
}

function responseTimedOut(handler: ResponseHandler): void {
  handler.timedOut();
}
