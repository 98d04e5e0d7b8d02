// Forwarding with undici: one keep-alive Pool per upstream target, both bodies streamed with
// backpressure (never buffered), a client abort cancels the upstream request. Pools outlive Plan
// swaps: they are keyed by origin and settings, and closed once no Plan refers to them.
import { Pool, type Dispatcher } from 'undici';
import type { RequestContext } from '../context.js';
import type { Plan, UpstreamPlan, UpstreamTarget } from '../policy/plan.js';
import { deny, type Deny } from '../errors.js';
import { upstreamDuration } from '../observability/metrics.js';
import { clientResponseHeaders, upstreamRequestHeaders } from './headers.js';
import { retryAdmission } from './retry.js';
import { BodyTooLargeError, requestBody, TOO_LARGE } from './body-limit.js';

/** How the forwarder tells the server that nothing reached the client and it must answer. */
export type ForwardFailure = (ctx: RequestContext, d: Deny) => void;

const TIMEOUT = deny('UPSTREAM_TIMEOUT');
const UNREACHABLE = deny('UPSTREAM_ERROR');
const TIMEOUT_CODES = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_BODY_TIMEOUT']);

interface PoolEntry {
  readonly pool: Pool;
  readonly host: string;
  readonly histogram: { observe(v: number): void };
}

export class Forwarder {
  readonly #pools = new Map<string, PoolEntry>();
  readonly #onFailure: ForwardFailure;

  constructor(onFailure: ForwardFailure) {
    this.#onFailure = onFailure;
  }

  #entry(up: UpstreamPlan, target: UpstreamTarget): PoolEntry {
    const key = `${target.origin}|${up.connections}|${up.connectTimeoutMs}|${up.responseTimeoutMs}|${up.name}`;
    let e = this.#pools.get(key);
    if (e === undefined) {
      const pool = new Pool(target.origin, {
        connections: up.connections,
        connect: { timeout: up.connectTimeoutMs },
        headersTimeout: up.responseTimeoutMs,
        bodyTimeout: up.responseTimeoutMs,
        keepAliveTimeout: 4_000,
      });
      e = { pool, host: new URL(target.origin).host, histogram: upstreamDuration.labels(up.name) };
      this.#pools.set(key, e);
    }
    return e;
  }

  /** Closes pools that no upstream of `plan` uses any more (after a reload). */
  retain(plan: Plan): void {
    const live = new Set<string>();
    for (const up of plan.upstreams.values()) {
      for (const t of up.targets) live.add(`${t.origin}|${up.connections}|${up.connectTimeoutMs}|${up.responseTimeoutMs}|${up.name}`);
    }
    for (const [key, e] of this.#pools) {
      if (!live.has(key)) {
        this.#pools.delete(key);
        void e.pool.close().catch(() => undefined);
      }
    }
  }

  forward(ctx: RequestContext, forwardPath: string, target?: UpstreamTarget, attempt = 0): void {
    const up = ctx.plan.upstreams.get(ctx.route!.upstream)!;
    // The breaker stage picked the target (round robin, open targets skipped).
    const t = target ?? ctx.admission?.handle.target ?? up.targets[0]!;
    const entry = this.#entry(up, t);
    const req = ctx.req;
    const hasBody = req.headers['content-length'] !== undefined ? req.headers['content-length'] !== '0' : req.headers['transfer-encoding'] !== undefined;
    const handler = new ResponseHandler(ctx, entry.histogram, this, forwardPath, attempt, hasBody);
    ctx.upstream = handler;
    entry.pool.dispatch(
      {
        origin: t.origin,
        path: t.basePath + forwardPath + ctx.query,
        method: req.method as Dispatcher.HttpMethod,
        headers: upstreamRequestHeaders(ctx, entry.host),
        body: hasBody ? requestBody(ctx) : null, // counted against maxBodySize when chunked
      },
      handler,
    );
  }

  /** Retries (src/upstream/retry.ts): only when nothing reached the upstream. */
  retry(ctx: RequestContext, err: Error, forwardPath: string, attempt: number, hasBody: boolean): boolean {
    if (retryAdmission(ctx, err, attempt, hasBody) === undefined) return false;
    this.forward(ctx, forwardPath, undefined, attempt + 1);
    return true;
  }

  failed(ctx: RequestContext, d: Deny): void {
    this.#onFailure(ctx, d);
  }

  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((e) => e.pool.close().catch(() => undefined)));
  }
}

/** Streams one upstream response to the client. One object per request: no closures. */
class ResponseHandler implements Dispatcher.DispatchHandler {
  readonly #ctx: RequestContext;
  readonly #histogram: { observe(v: number): void };
  readonly #forwarder: Forwarder;
  readonly #forwardPath: string;
  readonly #attempt: number;
  readonly #hasBody: boolean;
  #controller: Dispatcher.DispatchController | undefined;
  #done = false;
  #resume: (() => void) | undefined;

  constructor(ctx: RequestContext, histogram: { observe(v: number): void }, forwarder: Forwarder, forwardPath: string, attempt: number, hasBody: boolean) {
    this.#ctx = ctx;
    this.#histogram = histogram;
    this.#forwarder = forwarder;
    this.#forwardPath = forwardPath;
    this.#attempt = attempt;
    this.#hasBody = hasBody;
  }

  /** The client went away (the server calls this from its one 'close' listener): stop the upstream request too. */
  abort(): void {
    if (!this.#done) this.#controller?.abort(new Error('client closed the connection'));
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#ctx.res.destroyed) controller.abort(new Error('client closed the connection'));
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>): void {
    const ctx = this.#ctx;
    this.#histogram.observe((performance.now() - ctx.start) / 1000);
    ctx.admission?.settle(statusCode); // circuit breaker outcome
    ctx.res.writeHead(statusCode, clientResponseHeaders(headers, ctx.requestId, ctx.limits?.headers));
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (!this.#ctx.res.write(chunk)) {
      controller.pause();
      this.#ctx.res.once('drain', (this.#resume ??= () => controller.resume()));
    }
  }

  onResponseEnd(): void {
    this.#done = true;
    this.#ctx.res.end();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#done = true;
    const ctx = this.#ctx;
    const res = ctx.res;
    if (res.destroyed) {
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
