// The main thread's side of the audit worker. The request path only appends a record's fields to
// the current flat batch (wire.ts); a timer a few milliseconds later posts the batch to the worker,
// which formats, chains and writes it (worker.ts). On this 2-core target the proxy's main thread is
// the bottleneck, so every microsecond moved off it is request throughput.
import { existsSync } from 'node:fs';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { SystemEvent } from '../events.js';
import { auditBacklogAge, auditBacklogEvents, auditEventsTotal, auditQueueDepth, auditSpooledEvents } from '../observability/metrics.js';
import type { AuditPlan } from './compile.js';
import { AuditPipeline, type PipelineOptions, type PublishedHead } from './pipeline.js';
import { appendSystem, decodeBatch, type WireValue } from './wire.js';
import type { FromWorker, MetricSample, ToWorker, WorkerInit } from './worker.js';

// Longer than the in-thread pipeline's 5 ms: every batch wakes the worker (and its sink), and on a
// 2-core box those wake-ups cost the main thread too. Measured (bench full vs redis-limits, main
// thread µs/req above limits, 7 rounds): 5 ms +26, 20 ms +23; 50 ms was no better than 20 ms.
const FLUSH_MS = 20;
const FLUSH_AT = 2000;
/**
 * Events posted but not yet processed by the worker. Past this the batch timer waits for the
 * worker (blocking the event loop, as the in-thread pipeline's own formatting would) rather than
 * let the message queue grow without bound or drop events.
 */
const MAX_IN_FLIGHT = 100_000;
const WAIT_SLICE_MS = 50;

/** The in-thread pipeline's options that also apply to the worker (sinks are built inside it). */
export interface AuditWorkerOptions extends Pick<PipelineOptions, 'instance' | 'logger' | 'bus' | 'maxQueue' | 'retryMs'> {
  /** The worker's compiled entry (dist/audit/worker.js); tests point it at the build. */
  readonly entry?: URL;
}

/** The compiled worker next to this module, or undefined when running from TypeScript sources. */
export function defaultWorkerEntry(): URL | undefined {
  const url = new URL('./worker.js', import.meta.url);
  return existsSync(url) ? url : undefined;
}

export class AuditWorker {
  #plan: AuditPlan;
  readonly instance: string;
  readonly #o: AuditWorkerOptions;
  readonly #logger: Logger | undefined;
  readonly #processed: Int32Array;
  #worker: Worker | undefined;
  /** After the worker died: the in-thread pipeline takes over (see #onExit). */
  #fallback: AuditPipeline | undefined;
  #out: WireValue[] = [];
  #events = 0;
  #sent = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate = false;
  #closing = false;
  #closed: Promise<void> | undefined;
  #onClosed: (() => void) | undefined;
  readonly #flushNow = (): void => {
    this.#timer = undefined;
    this.#immediate = false;
    this.flush();
  };
  readonly #counted = new Map<string, number>();
  #unsubscribe: (() => void) | undefined;
  #onReady: (() => void) | undefined;
  readonly #ready: Promise<void>;
  #head: PublishedHead | undefined;
  #lastCheckpoint: PublishedHead | undefined;

  constructor(plan: AuditPlan, o: AuditWorkerOptions = {}) {
    const entry = o.entry ?? defaultWorkerEntry();
    if (entry === undefined) throw new Error('audit worker: no compiled worker entry (run npm run build)');
    this.#plan = plan;
    this.#o = o;
    this.#logger = o.logger;
    this.instance = (o.instance ?? process.env.PORTCULLIS_INSTANCE ?? os.hostname()).replace(/[^A-Za-z0-9_.]/g, '_');
    this.#ready = new Promise<void>((resolve) => (this.#onReady = resolve));
    const processed = new SharedArrayBuffer(4);
    this.#processed = new Int32Array(processed);
    const init: WorkerInit = { plan, instance: this.instance, maxQueue: o.maxQueue, retryMs: o.retryMs, processed };
    const worker = new Worker(entry, { workerData: init, name: 'portcullis-audit' });
    // The worker must not keep a finished CLI alive; close() is what waits for it.
    worker.unref();
    worker.on('message', (m: FromWorker) => this.#onMessage(m));
    worker.on('error', (err) => this.#logger?.error({ err }, 'audit worker failed'));
    worker.on('exit', (code) => this.#onExit(code));
    this.#worker = worker;
    if (o.bus) this.#unsubscribe = o.bus.subscribe((e) => this.recordSystem(e));
  }

  /**
   * Resolves once the worker runs with its sinks open (or has died and this thread took over).
   * Serving before then would leave the first requests' events in memory for as long as the
   * worker takes to start (module loading: most of a second on a busy machine), where a crash
   * loses them; after it, an event waits no longer than one batch interval (FLUSH_MS).
   */
  open(timeoutMs = 10_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.#logger?.warn({ waitedMs: timeoutMs }, 'audit worker not started yet: serving anyway');
        resolve();
      }, timeoutMs);
      timer.unref();
    });
    return Promise.race([this.#ready, late]).finally(() => clearTimeout(timer));
  }

  /**
   * The request path's entry: the batch to append exactly one record to (tag, then its fields in
   * wire order). O(1), never waits; the batch goes out on a timer.
   */
  take(): WireValue[] {
    if (this.#closing) return [];
    const n = ++this.#events;
    if (n >= FLUSH_AT) {
      if (!this.#immediate) {
        this.#immediate = true;
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = undefined;
        setImmediate(this.#flushNow);
      }
    } else if (this.#timer === undefined && !this.#immediate) {
      this.#timer = setTimeout(this.#flushNow, FLUSH_MS);
    }
    return this.#out;
  }

  recordSystem(e: SystemEvent): void {
    if (this.#closing) return;
    appendSystem(this.take(), Date.now(), e);
  }

  /** Posts everything appended so far to the worker (or writes it in-thread after a worker crash). */
  flush(): void {
    const n = this.#events;
    if (n === 0) return;
    const a = this.#out;
    this.#out = [];
    this.#events = 0;
    if (this.#fallback) {
      this.#fallback.write(decodeBatch(a));
      return;
    }
    this.#waitForRoom();
    this.#sent = (this.#sent + n) | 0;
    const m: ToWorker = { t: 'batch', a, n };
    this.#worker?.postMessage(m);
  }

  #inFlight(): number {
    return (this.#sent - Atomics.load(this.#processed, 0)) | 0;
  }

  #waitForRoom(): void {
    if (this.#inFlight() < MAX_IN_FLIGHT) return;
    this.#logger?.warn({ inFlight: this.#inFlight() }, 'audit worker behind: waiting for it');
    while (this.#worker !== undefined && this.#inFlight() >= MAX_IN_FLIGHT) {
      Atomics.wait(this.#processed, 0, Atomics.load(this.#processed, 0), WAIT_SLICE_MS);
    }
  }

  /**
   * The newest chain head the worker reported (at most a metrics interval, 250 ms, old), or the
   * in-thread pipeline's after a worker crash.
   */
  get head(): PublishedHead | undefined {
    return this.#fallback?.head ?? this.#head;
  }

  get lastCheckpoint(): PublishedHead | undefined {
    return this.#fallback?.lastCheckpoint ?? this.#lastCheckpoint;
  }

  /** The audit section running now: a reload's, from the moment it was handed to the worker. */
  get plan(): AuditPlan {
    return this.#plan;
  }

  /**
   * Called on every Plan swap: a changed audit section is applied. What was appended before goes to
   * the worker first, under the old settings; the worker switches its sinks (AuditPipeline.reconfigure)
   * and holds the batches that arrive meanwhile, so nothing is lost or reordered.
   */
  onPlan(next: AuditPlan | undefined): void {
    if (next === undefined || next.fingerprint === this.#plan.fingerprint || this.#closing) return;
    this.#plan = next;
    if (this.#fallback) {
      this.#fallback.reconfigure(next).catch((err: unknown) => this.#logger?.error({ err }, 'audit reconfiguration failed'));
      return;
    }
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    const m: ToWorker = { t: 'plan', plan: next };
    this.#worker?.postMessage(m);
  }

  /** SIGTERM path: flush, let the worker drain every sink (or spool the rest), stop it. */
  close(deadlineMs = 5000): Promise<void> {
    this.#closed ??= this.#close(deadlineMs);
    return this.#closed;
  }

  async #close(deadlineMs: number): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.#closing = true;
    this.#unsubscribe?.();
    const worker = this.#worker;
    if (worker === undefined) {
      await this.#fallback?.close(deadlineMs);
      return;
    }
    const closed = new Promise<void>((resolve) => (this.#onClosed = resolve));
    const m: ToWorker = { t: 'close', deadlineMs };
    worker.postMessage(m);
    // The worker honours the deadline itself; the margin covers the last fsync and its reply.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, deadlineMs + 2000)));
    await Promise.race([closed, late]);
    clearTimeout(timer);
    this.#worker = undefined;
    await worker.terminate();
    await this.#fallback?.close(deadlineMs);
  }

  #onMessage(m: FromWorker): void {
    switch (m.t) {
      case 'health': {
        const ev = m.ev;
        const failed = ev.type === 'sink.failed';
        const sink = ev.type === 'sink.failed' || ev.type === 'sink.recovered' ? ev.sink : '';
        const error = ev.type === 'sink.failed' ? ev.error : undefined;
        this.#logger?.[failed ? 'warn' : 'info']({ sink, error }, failed ? 'audit sink failed, spooling' : 'audit sink recovered');
        if (this.#o.bus) this.#o.bus.publish(ev);
        else this.recordSystem(ev);
        return;
      }
      case 'metrics':
        for (const s of m.samples) this.#applyMetric(s);
        return;
      case 'closed':
        this.#onClosed?.();
        return;
      case 'ready':
        this.#onReady?.();
        return;
      case 'head':
        if (this.#head === undefined || m.head.seq > this.#head.seq) this.#head = m.head;
        return;
      case 'switched':
        this.#head = m.head;
        return;
      case 'failed':
        this.#logger?.error({ err: m.error }, 'audit reconfiguration failed');
        return;
      case 'checkpoint':
        this.#lastCheckpoint = m.head;
        if (this.#head === undefined || m.head.seq > this.#head.seq) this.#head = m.head;
        this.#logger?.info({ audit: m.head }, 'audit checkpoint');
        return;
    }
  }

  #applyMetric(s: MetricSample): void {
    const sink = s.labels.sink ?? '';
    if (s.name === 'depth') auditQueueDepth.labels(sink).set(s.value);
    else if (s.name === 'spooled') auditSpooledEvents.labels(sink).set(s.value);
    else if (s.name === 'backlog') auditBacklogEvents.labels(sink).set(s.value);
    else if (s.name === 'age') auditBacklogAge.labels(sink).set(s.value);
    else {
      // The worker reports its own counter totals; the main registry gets the increase.
      const result = s.labels.result ?? '';
      const key = `${sink}\u0000${result}`;
      const delta = s.value - (this.#counted.get(key) ?? 0);
      this.#counted.set(key, s.value);
      if (delta > 0) auditEventsTotal.labels(sink, result).inc(delta);
    }
  }

  /**
   * The worker died (a bug; sinks do not throw into it). Events it had not processed are lost and
   * said so; from here on this thread writes, continuing the chain from the file's last line.
   */
  #onExit(code: number): void {
    const worker = this.#worker;
    if (worker === undefined) return; // close() stopped it
    if (this.#closing) {
      // It finished closing (or died doing so): nothing is left to take over.
      this.#onClosed?.();
      return;
    }
    this.#worker = undefined;
    const lost = this.#inFlight();
    this.#logger?.error({ code, lost }, 'audit worker exited: auditing in the main thread from now on');
    this.#fallback = new AuditPipeline(this.#plan, { instance: this.instance, logger: this.#logger, maxQueue: this.#o.maxQueue, retryMs: this.#o.retryMs, bus: undefined });
    this.#onClosed?.();
    this.#onReady?.();
  }
}
