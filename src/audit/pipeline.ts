// The long-lived audit pipeline: the request path pushes a record (no I/O, no await); a batch
// writer a few milliseconds later formats, chains and hands one batch of lines to every sink's
// dispatcher. Survives policy swaps; a changed `audit` section is reported as needing a restart.
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { EventBus, SystemEvent } from '../events.js';
import { GENESIS, chainHash, type ChainHead } from './chain.js';
import { CheckpointSigner, checkpointMessage, type CheckpointReason } from './checkpoint.js';
import type { AuditPlan, SinkConfig } from './compile.js';
import { SinkDispatcher } from './dispatcher.js';
import { EventIds, type AuditRecord } from './event.js';
import { formatHalves } from './format.js';
import { safeJsonLine } from '../observability/safe-text.js';
import type { AuditSink } from './sink.js';
import { FileSink, lastLine } from './sinks/file.js';
import { RedisStreamSink } from './sinks/redis-stream.js';
import { StdoutSink } from './sinks/stdout.js';
import { WebhookSink } from './sinks/webhook.js';
import { severityOf } from './wire.js';

const FLUSH_MS = 5;
const FLUSH_AT = 2000;

export interface PipelineOptions {
  readonly instance?: string;
  readonly logger?: Logger;
  readonly bus?: EventBus;
  /** Test hook: sinks built by the caller instead of from the plan's configs. */
  readonly sinks?: readonly AuditSink[];
  readonly maxQueue?: number;
  readonly retryMs?: number;
  /**
   * Where sink failed/recovered events go instead of the bus (the audit worker hands them to the
   * main thread, which logs them and publishes them on its bus).
   */
  readonly onSinkHealth?: (e: SystemEvent) => void;
  /** File sinks write synchronously (set by the audit worker, whose thread does nothing else). */
  readonly syncIo?: boolean;
  /** Where a written checkpoint is announced (default: an info log line). */
  readonly onCheckpoint?: (cp: PublishedHead) => void;
}

/** A chain head as published (admin endpoint, log line): what `audit verify --expect-head` takes. */
export interface PublishedHead {
  readonly instance: string;
  readonly seq: number;
  readonly hash: string;
  readonly time: string;
  /** Checkpoints only: why it was written. */
  readonly reason?: CheckpointReason;
}

function createSink(c: SinkConfig, syncIo = false): AuditSink {
  switch (c.kind) {
    case 'stdout':
      return new StdoutSink({ name: c.name });
    case 'file':
      return new FileSink({ name: c.name, path: c.path, rotateBytes: c.rotateBytes, retainMs: c.retainMs, fsync: c.fsync, syncIo });
    case 'redisStream':
      return new RedisStreamSink({ name: c.name, url: c.url, key: c.key, maxLen: c.maxLen });
    case 'webhook':
      return new WebhookSink({ name: c.name, url: c.url, secret: c.secret, batch: c.batch });
  }
}

/** Where a chain continues: the head of the first file sink's file, else a fresh chain. */
function chainHeadFor(plan: AuditPlan, instance: string): ChainHead {
  const file = plan.sinks.find((s) => s.kind === 'file');
  const line = file?.kind === 'file' ? lastLine(file.path) : undefined;
  if (line !== undefined) {
    const chain = (JSON.parse(line) as { chain?: { seq: number; hash: string } }).chain;
    if (chain) return { instance, seq: chain.seq + 1, prev: chain.hash };
  }
  return { instance, seq: 0, prev: GENESIS };
}

export class AuditPipeline {
  readonly plan: AuditPlan;
  readonly instance: string;
  readonly dispatchers: readonly SinkDispatcher[];
  readonly #ids: EventIds;
  readonly #logger: Logger | undefined;
  #records: AuditRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #head: ChainHead;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #lastTime = 0;
  readonly #signer: CheckpointSigner | undefined;
  readonly #onCheckpoint: ((cp: PublishedHead) => void) | undefined;
  #checkpointTimer: NodeJS.Timeout | undefined;
  /** Chain seq of the last checkpoint this process wrote (-1: none yet, so the first tick signs). */
  #checkpointSeq = -1;
  #checkpointing = false;
  #lastCheckpoint: PublishedHead | undefined;

  constructor(plan: AuditPlan, o: PipelineOptions = {}) {
    this.plan = plan;
    this.instance = (o.instance ?? process.env.PORTCULLIS_INSTANCE ?? os.hostname()).replace(/[^A-Za-z0-9_.]/g, '_');
    this.#ids = new EventIds(`${this.instance}.${process.pid.toString(36)}`);
    this.#logger = o.logger;
    this.#head = chainHeadFor(plan, this.instance);
    const sinks = o.sinks ?? plan.sinks.map((c) => createSink(c, o.syncIo));
    this.dispatchers = sinks.map(
      (sink) =>
        new SinkDispatcher(sink, path.join(plan.spoolDir, `${sink.name}.spool.ndjson`), {
          maxQueue: o.maxQueue,
          retryMs: o.retryMs,
          onHealth: (failed, error) => {
            const ev: SystemEvent = failed ? { type: 'sink.failed', sink: sink.name, error: error ?? '' } : { type: 'sink.recovered', sink: sink.name };
            if (o.onSinkHealth) return o.onSinkHealth(ev);
            this.#logger?.[failed ? 'warn' : 'info']({ sink: sink.name, error }, failed ? 'audit sink failed, spooling' : 'audit sink recovered');
            if (o.bus) o.bus.publish(ev);
            else this.recordSystem(ev);
          },
        }),
    );
    if (o.bus) this.#unsubscribe = o.bus.subscribe((e) => this.recordSystem(e));
    const cp = plan.chain ? plan.checkpoint : undefined;
    if (cp) {
      this.#signer = new CheckpointSigner(cp.key, cp.alg);
      this.#onCheckpoint = o.onCheckpoint ?? ((h) => this.#logger?.info({ audit: h }, 'audit checkpoint'));
      this.#checkpointTimer = setInterval(() => {
        if (this.#head.seq - 1 > this.#checkpointSeq) this.checkpoint('interval');
      }, cp.intervalMs);
      this.#checkpointTimer.unref();
    }
  }

  /** The newest event written (instance, seq, hash, time), or undefined before the first. */
  get head(): PublishedHead | undefined {
    const h = this.#head;
    if (h.seq === 0) return undefined;
    return { instance: this.instance, seq: h.seq - 1, hash: h.prev, time: new Date(this.#lastTime || Date.now()).toISOString() };
  }

  get lastCheckpoint(): PublishedHead | undefined {
    return this.#lastCheckpoint;
  }

  /**
   * Writes a signed checkpoint over the current head now (after anything pushed before it), and
   * announces it. Nothing happens without a checkpoint key or before the chain has an event.
   */
  checkpoint(reason: CheckpointReason): void {
    const signer = this.#signer;
    if (signer === undefined || this.#checkpointing) return;
    this.#checkpointing = true;
    try {
      this.flush();
      const { seq: next, prev } = this.#head;
      if (next === 0) return;
      const time = Date.now();
      const iso = new Date(time).toISOString();
      const seq = next - 1;
      const sig = signer.sign(checkpointMessage(this.instance, seq, prev, iso, reason));
      this.write([{ kind: 1, time, type: 'audit.checkpoint', severity: 'info', detail: { instance: this.instance, seq, hash: prev, alg: signer.alg, keyId: signer.keyId, reason, sig } }]);
      this.#checkpointSeq = next;
      const written: PublishedHead = { instance: this.instance, seq: next, hash: this.#head.prev, time: iso, reason };
      this.#lastCheckpoint = written;
      this.#onCheckpoint?.(written);
    } finally {
      this.#checkpointing = false;
    }
  }

  /**
   * Opens what the sinks can open ahead of the first event (a file sink's file). A sink that
   * cannot open now is not an error here: its first write fails and the dispatcher spools.
   */
  async open(): Promise<void> {
    await Promise.all(this.dispatchers.map((d) => d.sink.open?.().catch(() => undefined)));
  }

  /** The request path's entry: O(1), never throws, never waits. */
  push(r: AuditRecord): void {
    if (this.#closed) return;
    const n = this.#records.push(r);
    if (n >= FLUSH_AT) {
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = undefined;
      setImmediate(() => this.flush());
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.flush();
      }, FLUSH_MS);
    }
  }

  recordSystem(e: SystemEvent): void {
    const { type, ...detail } = e;
    this.push({ kind: 1, time: Date.now(), type, severity: severityOf(e), detail });
  }

  /** Formats, chains and dispatches everything pushed so far (synchronously). */
  flush(): void {
    const records = this.#records;
    if (records.length === 0) return;
    this.#records = [];
    this.write(records);
  }

  /** Formats, chains and dispatches one batch now, after anything flushed before (the worker's entry). */
  write(records: readonly AuditRecord[]): void {
    if (records.length === 0) return;
    const lines = new Array<string>(records.length);
    const chain = this.plan.chain;
    let { seq, prev } = this.#head;
    const inst = JSON.stringify(this.instance);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const [head, tail] = formatHalves(r, this.#ids.next(r.time));
      // The hash covers the canonical form; the line escapes unsafe characters, which JSON.parse undoes.
      if (!chain) {
        lines[i] = safeJsonLine(head + tail);
        continue;
      }
      const rest = `"instance":${inst},"prev":"${prev}","seq":${seq}}`;
      const hash = chainHash(prev, `${head},"chain":{${rest}${tail}`);
      lines[i] = safeJsonLine(`${head},"chain":{"hash":"${hash}",${rest}${tail}`);
      prev = hash;
      seq++;
    }
    this.#head = { instance: this.instance, seq, prev };
    this.#lastTime = records[records.length - 1]!.time;
    for (const d of this.dispatchers) d.push(lines);
    const every = this.plan.checkpoint?.events ?? 0;
    if (every > 0 && chain && seq - 1 - this.#checkpointSeq >= every) this.checkpoint('events');
  }

  /** Called on every Plan swap: sinks are built once; a changed audit section needs a restart. */
  onPlan(next: AuditPlan | undefined): void {
    if ((next?.fingerprint ?? '') !== this.plan.fingerprint) {
      this.#logger?.warn('the audit section changed: restart Portcullis for new sinks to take effect');
    }
  }

  /** SIGTERM path: flush, drain every sink (or leave the rest in its durable spool), close. */
  async close(deadlineMs = 5000): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    // A cleanly stopped writer's trail ends with a signed head: an auditor can tell it from a cut.
    if (!this.#closed) this.checkpoint('shutdown');
    this.#closed = true;
    this.#unsubscribe?.();
    await Promise.all(this.dispatchers.map((d) => d.close(deadlineMs)));
  }
}
