// The audit worker thread: runs the whole pipeline (formatting, chaining, sinks, dispatchers,
// spools) off the proxy's main thread. The main thread sends flat batches (wire.ts); the worker
// writes them in arrival order, counts them into a shared "processed" counter (the main thread's
// backpressure reads it without a message), and reports sink health and metrics back.
import { parentPort, workerData } from 'node:worker_threads';
import type { SystemEvent } from '../events.js';
import { auditBacklogAge, auditBacklogEvents, auditEventsTotal, auditQueueDepth, auditSpooledEvents } from '../observability/metrics.js';
import type { AuditPlan } from './compile.js';
import { AuditPipeline, type PublishedHead } from './pipeline.js';
import { decodeBatch, type WireValue } from './wire.js';

export interface WorkerInit {
  readonly plan: AuditPlan;
  readonly instance: string;
  readonly maxQueue: number | undefined;
  readonly retryMs: number | undefined;
  /** Int32Array view: [0] = events processed (handed to every dispatcher). */
  readonly processed: SharedArrayBuffer;
}

export type ToWorker = { readonly t: 'batch'; readonly a: WireValue[]; readonly n: number } | { readonly t: 'plan'; readonly plan: AuditPlan } | { readonly t: 'close'; readonly deadlineMs: number };

export interface MetricSample {
  readonly name: 'events' | 'depth' | 'spooled' | 'backlog' | 'age';
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export type FromWorker =
  | { readonly t: 'health'; readonly ev: SystemEvent }
  | { readonly t: 'metrics'; readonly samples: readonly MetricSample[] }
  | { readonly t: 'closed' }
  | { readonly t: 'ready' }
  | { readonly t: 'head'; readonly head: PublishedHead }
  /** A reload switched the sinks: the head the chain goes on from (it may be another file's). */
  | { readonly t: 'switched'; readonly head: PublishedHead | undefined }
  /** A reload's switch of the sinks failed (a bug): said in the main thread's log. */
  | { readonly t: 'failed'; readonly error: string }
  | { readonly t: 'checkpoint'; readonly head: PublishedHead };

const METRICS_MS = 250;

const port = parentPort;
if (port === null) throw new Error('audit worker: not started as a worker thread');
const init = workerData as WorkerInit;
const processed = new Int32Array(init.processed);
const post = (m: FromWorker): void => port.postMessage(m);

const pipeline = new AuditPipeline(init.plan, {
  instance: init.instance,
  maxQueue: init.maxQueue,
  retryMs: init.retryMs,
  syncIo: true,
  onSinkHealth: (ev) => post({ t: 'health', ev }),
  onCheckpoint: (head) => post({ t: 'checkpoint', head }),
});

// The main thread holds the proxy listener back until this arrives (see AuditWorker.open).
void pipeline.open().then(() => post({ t: 'ready' }));

let lastSent = '';
let lastHead = -1;
async function sendMetrics(force: boolean): Promise<void> {
  const head = pipeline.head;
  if (head !== undefined && head.seq !== lastHead) {
    lastHead = head.seq;
    post({ t: 'head', head });
  }
  const samples: MetricSample[] = [];
  for (const [name, metric] of [
    ['events', auditEventsTotal],
    ['depth', auditQueueDepth],
    ['spooled', auditSpooledEvents],
    ['backlog', auditBacklogEvents],
    ['age', auditBacklogAge],
  ] as const) {
    for (const v of (await metric.get()).values) samples.push({ name, labels: v.labels as Record<string, string>, value: v.value });
  }
  const text = JSON.stringify(samples);
  if (!force && text === lastSent) return;
  lastSent = text;
  post({ t: 'metrics', samples });
}
const metricsTimer = setInterval(() => void sendMetrics(false), METRICS_MS);

port.on('message', (m: ToWorker) => {
  if (m.t === 'batch') {
    pipeline.write(decodeBatch(m.a));
    Atomics.add(processed, 0, m.n);
    Atomics.notify(processed, 0);
    return;
  }
  if (m.t === 'plan') {
    // Batches that arrive while the sinks switch wait inside the pipeline, in order.
    pipeline.reconfigure(m.plan).then(
      () => {
        lastHead = pipeline.head?.seq ?? -1;
        post({ t: 'switched', head: pipeline.head });
      },
      (err: unknown) => post({ t: 'failed', error: err instanceof Error ? err.message : String(err) }),
    );
    return;
  }
  clearInterval(metricsTimer);
  void pipeline
    .close(m.deadlineMs)
    .then(() => sendMetrics(true))
    .finally(() => {
      post({ t: 'closed' });
      port.close();
    });
});
