// The request recorder when tracing is on: hands every finished request to the audit recorder (if
// audit is configured) and a sampled one's span to the trace worker. Reads only what the request
// already computed; the path goes without its query, and no header value is read: a credential
// never reaches a span.
import type { RequestContext, RequestRecorder } from '../core/context.js';
import type { TraceExporter } from '../observability/trace-export.js';

export class TracingRecorder implements RequestRecorder {
  readonly #audit: RequestRecorder | undefined;
  readonly #traces: TraceExporter;

  constructor(audit: RequestRecorder | undefined, traces: TraceExporter) {
    this.#audit = audit;
    this.#traces = traces;
  }

  record(ctx: RequestContext, status: number, durationMs: number): void {
    this.#audit?.record(ctx, status, durationMs);
    const span = ctx.span;
    if (span === undefined) return;
    const code = ctx.code ?? (status === 499 ? 'CLIENT_CLOSED' : 'OK');
    this.#traces.record(ctx.traceparent, span, ctx.start, durationMs, ctx.method, ctx.route?.name ?? null, ctx.path, status, ctx.clientIp, code, ctx.principal?.tenant ?? null);
  }
}
