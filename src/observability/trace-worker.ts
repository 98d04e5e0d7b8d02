// The trace worker thread: started only when an OTLP endpoint is configured, it is the one place
// the OpenTelemetry packages are loaded. It turns the main thread's flat records (trace-export.ts,
// record()) into finished spans with the ids and times the main thread chose, queues them, and
// exports them in batches with the OTLP/HTTP exporter (protobuf or JSON), which reads its endpoint,
// headers, timeout and compression from the standard OTEL_EXPORTER_OTLP_* variables. A collector
// that is down costs the proxy nothing: batches fail here, are counted and reported back.
import { parentPort, workerData } from 'node:worker_threads';
import { type Attributes, type HrTime, SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { type ExportResult, ExportResultCode, millisToHrTime } from '@opentelemetry/core';
import { detectResources, envDetector, type Resource, resourceFromAttributes } from '@opentelemetry/resources';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_SERVICE_NAME,
  ATTR_SERVICE_VERSION,
  ATTR_URL_PATH,
} from '@opentelemetry/semantic-conventions';
import type { FromTraceWorker, SpanCounts, ToTraceWorker, TraceWorkerInit } from './trace-export.js';
import { RECORD_FIELDS } from './trace-export.js';
import { MARK } from './trace-sampler.js';

const port = parentPort;
if (port === null) throw new Error('trace worker: not started as a worker thread');
const init = workerData as TraceWorkerInit;
const post = (m: FromTraceWorker): void => port.postMessage(m);

/** The OTel batch span processor's variables and defaults. */
function envInt(name: string, fallback: number): number {
  const v = Number(process.env[name]);
  return Number.isInteger(v) && v > 0 ? v : fallback;
}
const SCHEDULE_MS = envInt('OTEL_BSP_SCHEDULE_DELAY', 5000);
const MAX_QUEUE = envInt('OTEL_BSP_MAX_QUEUE_SIZE', 2048);
const MAX_BATCH = Math.min(envInt('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512), MAX_QUEUE);

const SCOPE = init.serviceVersion ? { name: 'portcullis', version: init.serviceVersion } : { name: 'portcullis' };
const resource: Resource = resourceFromAttributes({ [ATTR_SERVICE_NAME]: 'portcullis', ...(init.serviceVersion ? { [ATTR_SERVICE_VERSION]: init.serviceVersion } : {}) }).merge(
  // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES: what the operator set wins over the defaults above.
  detectResources({ detectors: [envDetector] }),
);

const exporter: SpanExporter =
  init.protocol === 'http/json'
    ? new (await import('@opentelemetry/exporter-trace-otlp-http')).OTLPTraceExporter()
    : new (await import('@opentelemetry/exporter-trace-otlp-proto')).OTLPTraceExporter();
await resource.waitForAsyncAttributes?.();

/** A request's spans, exported together (a trace is never split across a failure). */
let queue: ReadableSpan[][] = [];
let queued = 0;
let exporting: Promise<void> | undefined;
let exported = 0;
let failed = 0;
let dropped = 0;
let lastError: string | undefined;
const counts = (): SpanCounts => ({ exported, failed, dropped });

function span(name: string, kind: SpanKind, traceId: string, spanId: string, parentSpanId: string, startMs: number, endMs: number, attributes: Attributes, error: boolean): ReadableSpan {
  const startTime: HrTime = millisToHrTime(startMs);
  const endTime: HrTime = millisToHrTime(Math.max(endMs, startMs));
  const s: ReadableSpan = {
    name,
    kind,
    spanContext: () => ({ traceId, spanId, traceFlags: 1 }),
    startTime,
    endTime,
    duration: millisToHrTime(Math.max(endMs - startMs, 0)),
    status: { code: error ? SpanStatusCode.ERROR : SpanStatusCode.UNSET },
    attributes,
    links: [],
    events: [],
    ended: true,
    resource,
    instrumentationScope: SCOPE,
    droppedAttributesCount: 0,
    droppedEventsCount: 0,
    droppedLinksCount: 0,
  };
  if (parentSpanId === '') return s;
  // The server span's parent is the caller's span (remote); the children's is the server span.
  return { ...s, parentSpanContext: { traceId, spanId: parentSpanId, traceFlags: 1, isRemote: kind === SpanKind.SERVER } };
}

/** Random 8-byte span ids for the internal children (the upstream one is the forwarded traceparent's). */
function childId(): string {
  return crypto.getRandomValues(new Uint8Array(8)).reduce((s, b) => s + b.toString(16).padStart(2, '0'), '');
}

const CHILDREN: readonly (readonly [string, number, SpanKind])[] = [
  ['authentication', MARK.authnStart, SpanKind.INTERNAL],
  ['authorization', MARK.authzStart, SpanKind.INTERNAL],
  ['limits', MARK.limitsStart, SpanKind.INTERNAL],
  ['upstream', MARK.upstreamStart, SpanKind.CLIENT],
];

/** One record (RECORD_FIELDS values from `i`) as its server span and the children it reached. */
function spansOf(a: readonly (string | number)[], i: number): ReadableSpan[] {
  const traceparent = a[i] as string;
  const parentSpanId = a[i + 1] as string;
  const serverId = a[i + 2] as string;
  const startMs = a[i + 3] as number;
  const durationMs = a[i + 4] as number;
  const method = a[i + 5] as string;
  const route = a[i + 6] as string;
  const path = a[i + 7] as string;
  const status = a[i + 8] as number;
  const clientIp = a[i + 9] as string;
  const code = a[i + 10] as string;
  const tenant = a[i + 11] as string;
  const marks = i + 12;
  const traceId = traceparent.slice(3, 35);
  const upstreamId = traceparent.slice(36, 52);
  const endMs = startMs + durationMs;
  const attributes: Attributes = {
    [ATTR_HTTP_REQUEST_METHOD]: method,
    [ATTR_URL_PATH]: path,
    [ATTR_HTTP_RESPONSE_STATUS_CODE]: status,
    [ATTR_CLIENT_ADDRESS]: clientIp,
    'portcullis.code': code,
  };
  if (route !== '') attributes[ATTR_HTTP_ROUTE] = route;
  if (tenant !== '') attributes['portcullis.tenant'] = tenant;
  const out = [span(route === '' ? method : `${method} ${route}`, SpanKind.SERVER, traceId, serverId, parentSpanId, startMs, endMs, attributes, status >= 500)];
  for (const [name, at, kind] of CHILDREN) {
    const from = a[marks + at] as number;
    if (from < 0) continue;
    const to = a[marks + at + 1] as number;
    const upstream = kind === SpanKind.CLIENT;
    const childAttributes: Attributes = upstream ? { [ATTR_HTTP_REQUEST_METHOD]: method } : {};
    const error = upstream && (code === 'UPSTREAM_ERROR' || code === 'UPSTREAM_TIMEOUT');
    // A stage that threw, or an exchange the client cut short, ends with the request.
    out.push(span(name, kind, traceId, upstream ? upstreamId : childId(), serverId, startMs + from, to < 0 ? endMs : startMs + to, childAttributes, error));
  }
  return out;
}

function enqueue(a: readonly (string | number)[]): void {
  for (let i = 0; i + RECORD_FIELDS <= a.length; i += RECORD_FIELDS) {
    if (queued >= MAX_QUEUE) {
      dropped++;
      continue;
    }
    queue.push(spansOf(a, i));
    queued++;
  }
  if (queued >= MAX_BATCH) void exportSome();
}

function exportBatch(traces: ReadableSpan[][]): Promise<void> {
  return new Promise<void>((resolve) => {
    const spans = traces.flat();
    try {
      exporter.export(spans, (r: ExportResult) => {
        if (r.code === ExportResultCode.SUCCESS) {
          exported += traces.length;
          lastError = undefined;
        } else {
          failed += traces.length;
          lastError = r.error?.message ?? 'export failed';
        }
        resolve();
      });
    } catch (err) {
      failed += traces.length;
      lastError = err instanceof Error ? err.message : String(err);
      resolve();
    }
  });
}

/** One batch at a time, like the OTel batch span processor: a slow collector is not piled onto. */
function exportSome(): Promise<void> {
  if (exporting !== undefined || queued === 0) return exporting ?? Promise.resolve();
  const batch = queue.slice(0, MAX_BATCH);
  queue = queue.slice(MAX_BATCH);
  queued = queue.length;
  exporting = exportBatch(batch).finally(() => {
    exporting = undefined;
    post({ t: 'counts', counts: counts(), error: lastError });
    if (queued >= MAX_BATCH) void exportSome();
  });
  return exporting;
}

const timer = setInterval(() => void exportSome(), SCHEDULE_MS);

async function close(deadlineMs: number): Promise<void> {
  clearInterval(timer);
  const deadline = Date.now() + deadlineMs;
  while ((queued > 0 || exporting !== undefined) && Date.now() < deadline) {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadline - Date.now())));
    await Promise.race([exporting ?? exportSome(), late]);
    clearTimeout(timer);
    if (exporting !== undefined && Date.now() >= deadline) break;
  }
  failed += queued; // what the deadline left: not exported
  queue = [];
  queued = 0;
  await exporter.shutdown().catch(() => undefined);
}

port.on('message', (m: ToTraceWorker) => {
  if (m.t === 'batch') return enqueue(m.a);
  void close(m.deadlineMs).finally(() => {
    post({ t: 'closed', counts: counts() });
    port.close();
  });
});
