// The main thread's side of the trace worker: a sampled request's finished span is appended to a
// flat batch as numbers and strings (no objects), and a timer posts the batch to the worker, which
// builds the OpenTelemetry spans and exports them (trace-worker.ts). Export faults stay in the
// worker: they are counted here from its reports and logged on a change, and never reach a request.
import { existsSync, readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { tracesTotal } from './metrics.js';
import { MARKS, type SampledSpan, type TracingConfig } from './trace-sampler.js';

/** One request's fields in the batch, in the order the worker reads them (see record()). */
export const RECORD_FIELDS = 12 + MARKS;

const FLUSH_MS = 50;
const FLUSH_AT = 512;
/** Requests appended but not yet posted past which further ones are dropped (the worker is gone or stuck). */
const MAX_PENDING = 65_536;

export interface TraceWorkerInit {
  readonly protocol: TracingConfig['protocol'];
  readonly serviceVersion: string;
}

export type ToTraceWorker = { readonly t: 'batch'; readonly a: (string | number)[] } | { readonly t: 'close'; readonly deadlineMs: number };

export interface SpanCounts {
  readonly exported: number;
  readonly failed: number;
  readonly dropped: number;
}

export type FromTraceWorker = { readonly t: 'counts'; readonly counts: SpanCounts; readonly error: string | undefined } | { readonly t: 'closed'; readonly counts: SpanCounts };

export interface TraceExporterOptions {
  readonly config: TracingConfig;
  readonly logger?: Logger | undefined;
  /** The worker's variables (OTEL_EXPORTER_OTLP_*, OTEL_SERVICE_NAME, …): the exporter reads them there. */
  readonly env: NodeJS.ProcessEnv;
  /** The compiled worker (dist/observability/trace-worker.js); tests point it at the build. */
  readonly entry?: URL | undefined;
}

/** The compiled worker next to this module, or undefined when running from TypeScript sources. */
export function defaultTraceWorkerEntry(): URL | undefined {
  const url = new URL('./trace-worker.js', import.meta.url);
  return existsSync(url) ? url : undefined;
}

/** service.version: read once, at startup, from the package.json beside src/ or dist/. */
function packageVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? '';
  } catch {
    return '';
  }
}

export class TraceExporter {
  readonly #logger: Logger | undefined;
  #worker: Worker | undefined;
  #out: (string | number)[] = [];
  #records = 0;
  #timer: NodeJS.Timeout | undefined;
  readonly #flushNow = (): void => {
    this.#timer = undefined;
    this.flush();
  };
  #closing = false;
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  #counted: SpanCounts = { exported: 0, failed: 0, dropped: 0 };
  #lastError: string | undefined;

  constructor(o: TraceExporterOptions) {
    const entry = o.entry ?? defaultTraceWorkerEntry();
    if (entry === undefined) throw new Error('tracing: no compiled trace worker (run npm run build)');
    this.#logger = o.logger;
    const init: TraceWorkerInit = { protocol: o.config.protocol, serviceVersion: packageVersion() };
    const worker = new Worker(entry, { workerData: init, name: 'portcullis-trace', env: { ...o.env } });
    // Like the audit worker: close() is what waits for it, it must not keep a finished CLI alive.
    worker.unref();
    worker.on('message', (m: FromTraceWorker) => this.#onMessage(m));
    worker.on('error', (err) => this.#logger?.error({ err }, 'trace worker failed'));
    worker.on('exit', (code) => this.#onExit(code));
    this.#worker = worker;
  }

  /**
   * Appends one finished request's span: O(1), no I/O, no object built. Times are milliseconds:
   * `startMs` since the epoch, the marks as performance.now() values (0: not reached).
   */
  record(
    traceparent: string,
    span: SampledSpan,
    start: number,
    durationMs: number,
    method: string,
    route: string | null,
    path: string,
    status: number,
    clientIp: string,
    code: string,
    tenant: string | null,
  ): void {
    if (this.#closing || this.#worker === undefined) return this.#drop(1);
    if (this.#records >= MAX_PENDING) return this.#drop(1);
    const out = this.#out;
    out.push(traceparent, span.parentSpanId, span.spanId, performance.timeOrigin + start, durationMs, method, route ?? '', path, status, clientIp, code, tenant ?? '');
    const marks = span.marks;
    for (let i = 0; i < MARKS; i++) out.push(marks[i] === 0 ? -1 : marks[i]! - start);
    if (++this.#records >= FLUSH_AT) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.flush();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#flushNow, FLUSH_MS);
      this.#timer.unref();
    }
  }

  #drop(n: number): void {
    if (n > 0) tracesTotal.labels('dropped').inc(n);
  }

  flush(): void {
    if (this.#records === 0 || this.#worker === undefined) return;
    const a = this.#out;
    this.#out = [];
    this.#records = 0;
    const m: ToTraceWorker = { t: 'batch', a };
    this.#worker.postMessage(m);
  }

  /** Shutdown: the spans appended so far are exported within deadlineMs (or counted as failed). */
  close(deadlineMs = 5000): Promise<void> {
    this.#closed ??= this.#close(deadlineMs);
    return this.#closed;
  }

  async #close(deadlineMs: number): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#closing = true;
    const worker = this.#worker;
    if (worker === undefined) return;
    const closed = new Promise<void>((resolve) => (this.#onClosed = resolve));
    const m: ToTraceWorker = { t: 'close', deadlineMs };
    worker.postMessage(m);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs + 2000)));
    await Promise.race([closed, late]);
    clearTimeout(timer);
    this.#worker = undefined;
    await worker.terminate();
  }

  #onMessage(m: FromTraceWorker): void {
    this.#count(m.counts);
    if (m.t === 'closed') return this.#onClosed?.();
    // Said once per change, not per failed batch: a collector that is down fails every few seconds.
    if (m.error !== this.#lastError) {
      if (m.error !== undefined) this.#logger?.warn({ error: m.error }, 'trace export failing: spans are dropped until the collector answers');
      else this.#logger?.info('trace export recovered');
      this.#lastError = m.error;
    }
  }

  /** The worker reports running totals; the registry gets the increase. */
  #count(c: SpanCounts): void {
    const before = this.#counted;
    if (c.exported > before.exported) tracesTotal.labels('exported').inc(c.exported - before.exported);
    if (c.failed > before.failed) tracesTotal.labels('failed').inc(c.failed - before.failed);
    if (c.dropped > before.dropped) tracesTotal.labels('dropped').inc(c.dropped - before.dropped);
    this.#counted = c;
  }

  #onExit(code: number): void {
    if (this.#worker === undefined) return; // close() stopped it
    this.#worker = undefined;
    this.#drop(this.#records);
    this.#onClosed?.();
    if (!this.#closing) this.#logger?.error({ code }, 'trace worker exited: tracing is off until restart');
  }
}
