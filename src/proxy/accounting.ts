// What a forwarding door records once a request has ended, written once for the HTTP/1.1 and the
// HTTP/2 door: portcullis_requests_total and the duration histogram by route, the tenant's latency,
// and the audit record. Metric cells are cached by a number made of small indexes, so no label
// string is built or hashed per request; a fault while recording is contained here.
import type { Logger } from 'pino';
import type { RequestContext, RequestRecorder } from '../core/context.js';
import { faultContained } from '../observability/faults.js';
import type { TenantLatency } from '../observability/latency.js';
import { type HotCell, requestDuration, requestsTotal } from '../observability/metrics.js';

const NO_ROUTE = '-';
type Histogram = { observe(v: number): void };

export class RequestAccounting {
  readonly #logger: Logger;
  readonly #recorder: RequestRecorder | undefined;
  readonly #latency: TenantLatency | undefined;
  /** portcullis_requests_total cells: route → (status, method, code) as one number → cell. */
  readonly #counters = new Map<string, Map<number, HotCell>>();
  readonly #methodIndex = new Map<string, number>();
  readonly #codeIndex = new Map<string, number>();
  readonly #durations = new Map<string, Histogram>();

  constructor(logger: Logger, recorder: RequestRecorder | undefined, latency: TenantLatency | undefined) {
    this.#logger = logger;
    this.#recorder = recorder;
    this.#latency = latency;
  }

  /** `finished`: the response was written whole; without a code that is OK, otherwise CLIENT_CLOSED. */
  record(ctx: RequestContext, status: number, durationMs: number, finished: boolean): void {
    const route = ctx.route?.name ?? NO_ROUTE;
    const code = ctx.code ?? (finished ? 'OK' : 'CLIENT_CLOSED');
    const method = ctx.method;
    const key = status * 16384 + smallIndex(this.#methodIndex, method) * 128 + smallIndex(this.#codeIndex, code);
    let cells = this.#counters.get(route);
    if (cells === undefined) this.#counters.set(route, (cells = new Map()));
    let c = cells.get(key);
    if (c === undefined) cells.set(key, (c = requestsTotal.cell(route, method, String(status), code)));
    c.n++;
    let h = this.#durations.get(route);
    if (h === undefined) this.#durations.set(route, (h = requestDuration.labels(route)));
    h.observe(durationMs / 1000);
    const tenant = ctx.principal?.tenant;
    if (tenant !== undefined) this.#latency?.record(tenant, durationMs);
    try {
      this.#recorder?.record(ctx, status, durationMs);
    } catch (err) {
      faultContained(this.#logger, 'audit', err, { requestId: ctx.requestId, route: ctx.route?.name });
    }
  }
}

/** A small stable number for a string of a bounded set: HTTP methods (llhttp knows < 50), reason codes (< 30). */
function smallIndex(index: Map<string, number>, value: string): number {
  let i = index.get(value);
  if (i === undefined) index.set(value, (i = index.size));
  return i;
}
