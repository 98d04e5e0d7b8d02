// The RequestRecorder the doors call: turns a finished request into a small record for the pipeline,
// honouring the route's `audit: all | denied | none`. No I/O, no copies of request data. With the
// audit worker it does not even build a record: it appends the fields to the batch in wire order.
import type { RequestContext, RequestRecorder } from '../core/context.js';
import type { Principal } from '../core/principal.js';
import type { Route } from '../core/route.js';
import { AuditWorker } from './offthread.js';
import type { AuditPipeline } from './pipeline.js';
import { redactedTarget } from './redact.js';
import { REQUEST, REQUEST_SAME, type WireValue } from './wire.js';

export class AuditRecorder implements RequestRecorder {
  readonly #pipeline: AuditPipeline | undefined;
  readonly #worker: AuditWorker | undefined;
  /** Read per request: a reload may change `audit.redact`. */
  readonly #source: AuditPipeline | AuditWorker;
  // What the last full request record of the current batch carried (see REQUEST_SAME).
  #batch: WireValue[] | undefined;
  #principal: Principal | undefined;
  #route: Route | undefined;
  #method = '';
  #ip = '';
  #code: string | undefined;
  #permission: string | undefined;
  #shadow: string | undefined;
  #door: string | undefined;

  constructor(pipeline: AuditPipeline | AuditWorker) {
    if (pipeline instanceof AuditWorker) this.#worker = pipeline;
    else this.#pipeline = pipeline;
    this.#source = pipeline;
  }

  record(ctx: RequestContext, status: number, durationMs: number): void {
    const route = ctx.route;
    const mode = route === undefined ? 'all' : (ctx.plan.auditModes[route.index] ?? 'all');
    if (mode === 'none') return;
    const code = ctx.code;
    // Upstream faults and client aborts happen after the request was allowed.
    const allowed = code === undefined || code === 'UPSTREAM_ERROR' || code === 'UPSTREAM_TIMEOUT';
    if (mode === 'denied' && allowed) return;
    const p = ctx.principal;
    const path = redactedTarget(ctx.path, ctx.query, this.#source.plan.redact);
    if (this.#worker !== undefined) {
      this.#append(this.#worker.take(), ctx, path, allowed, status, durationMs);
      return;
    }
    this.#pipeline!.push({
      kind: 0,
      time: Date.now(),
      requestId: ctx.requestId,
      method: ctx.method,
      path,
      route: route?.name ?? null,
      ip: ctx.clientIp,
      subject: p?.subject ?? null,
      tenant: p?.tenant ?? null,
      keyId: p?.keyId ?? null,
      via: p?.via ?? null,
      allowed,
      code: code ?? null,
      permission: ctx.permission ?? null,
      shadow: ctx.shadowDecision ?? null,
      status,
      durationMs,
      door: ctx.door ?? null,
      upstreamPath: ctx.upstreamPath ?? null,
      tokens: ctx.tokens ?? null,
    });
  }

  #append(out: WireValue[], ctx: RequestContext, path: string, allowed: boolean, status: number, durationMs: number): void {
    const p = ctx.principal;
    const route = ctx.route;
    const method = ctx.method;
    if (
      out === this.#batch &&
      p === this.#principal &&
      route === this.#route &&
      method === this.#method &&
      ctx.clientIp === this.#ip &&
      ctx.code === this.#code &&
      ctx.permission === this.#permission &&
      ctx.shadowDecision === this.#shadow &&
      ctx.door === this.#door
    ) {
      out.push(REQUEST_SAME, Date.now(), ctx.requestId, path, status, durationMs, ctx.upstreamPath ?? null, ctx.tokens ?? null); // REPEAT_RECORD_FIELDS order
      return;
    }
    this.#batch = out;
    this.#principal = p;
    this.#route = route;
    this.#method = method;
    this.#ip = ctx.clientIp;
    this.#code = ctx.code;
    this.#permission = ctx.permission;
    this.#shadow = ctx.shadowDecision;
    this.#door = ctx.door;
    // In REQUEST_RECORD_FIELDS order (event.ts): the worker decodes by that table.
    out.push(
      REQUEST,
      Date.now(),
      ctx.requestId,
      method,
      path,
      route?.name ?? null,
      ctx.clientIp,
      p?.subject ?? null,
      p?.tenant ?? null,
      p?.keyId ?? null,
      p?.via ?? null,
      allowed,
      ctx.code ?? null,
      ctx.permission ?? null,
      ctx.shadowDecision ?? null,
      status,
      durationMs,
      ctx.door ?? null,
      ctx.upstreamPath ?? null,
      ctx.tokens ?? null,
    );
  }
}
