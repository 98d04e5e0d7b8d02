// The long-lived audit pipeline: the request path pushes a record (no I/O, no await); a batch
// writer a few milliseconds later formats, chains and hands one batch of lines to every sink's
// dispatcher. Survives policy swaps; a changed `audit` section is applied in place (reconfigure):
// one chain runs on across the switch, so the trail stays verifiable however the sinks change.
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import type { EventBus, SystemEvent } from '../events.js';
import { safeJsonLine } from '../observability/safe-text.js';
import { type ChainHead, chainHash, GENESIS } from './chain.js';
import { type CheckpointReason, CheckpointSigner, checkpointMessage } from './checkpoint.js';
import type { AuditPlan, SinkConfig } from './compile.js';
import { SinkDispatcher } from './dispatcher.js';
import { type AuditRecord, EventIds } from './event.js';
import { EventFormatter } from './format.js';
import type { AuditSink } from './sink.js';
import { FileSink, lastLine } from './sinks/file.js';
import { RedisStreamSink } from './sinks/redis-stream.js';
import { StdoutSink } from './sinks/stdout.js';
import { WebhookSink } from './sinks/webhook.js';
import { severityOf } from './wire.js';

const FLUSH_MS = 5;
const FLUSH_AT = 2000;
/** How long a reload waits for a sink it retires to take what was queued for it (the rest stays spooled). */
const RETIRE_MS = 5000;

export interface PipelineOptions {
  readonly instance?: string | undefined;
  readonly logger?: Logger | undefined;
  readonly bus?: EventBus | undefined;
  /** Test hook: sinks built by the caller instead of from the plan's configs. */
  readonly sinks?: readonly AuditSink[] | undefined;
  readonly maxQueue?: number | undefined;
  readonly retryMs?: number | undefined;
  /**
   * Where sink failed/recovered events go instead of the bus (the audit worker hands them to the
   * main thread, which logs them and publishes them on its bus).
   */
  readonly onSinkHealth?: ((e: SystemEvent) => void) | undefined;
  /** File sinks write synchronously (set by the audit worker, whose thread does nothing else). */
  readonly syncIo?: boolean | undefined;
  /** Where a written checkpoint is announced (default: an info log line). */
  readonly onCheckpoint?: ((cp: PublishedHead) => void) | undefined;
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

/** What makes two sinks the same across a reload: the sink as configured, and where it spools. */
const sinkKey = (c: SinkConfig, spoolDir: string): string => JSON.stringify([c, spoolDir]);

const firstFile = (plan: AuditPlan): string | undefined => {
  const f = plan.sinks.find((s) => s.kind === 'file');
  return f?.kind === 'file' ? f.path : undefined;
};

export class AuditPipeline {
  #plan: AuditPlan;
  readonly instance: string;
  #dispatchers: SinkDispatcher[];
  /** sinkKey of each dispatcher (undefined: a sink handed in by a test, kept across reloads). */
  #keys: (string | undefined)[];
  readonly #o: PipelineOptions;
  readonly #ids: EventIds;
  readonly #format = new EventFormatter();
  readonly #logger: Logger | undefined;
  #records: AuditRecord[] = [];
  #timer: NodeJS.Timeout | undefined;
  #head: ChainHead;
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  #lastTime = 0;
  #signer: CheckpointSigner | undefined;
  readonly #onCheckpoint: (cp: PublishedHead) => void;
  #checkpointTimer: NodeJS.Timeout | undefined;
  /** Chain seq of the last checkpoint this process wrote (-1: none yet, so the first tick signs). */
  #checkpointSeq = -1;
  #checkpointing = false;
  #lastCheckpoint: PublishedHead | undefined;
  /** While a reload switches sinks: batches written meanwhile, chained and dispatched once it is done. */
  #held: AuditRecord[][] | undefined;
  /** Reloads run one after another; close() waits for the last. */
  #switches: Promise<void> = Promise.resolve();
  #switching = 0;

  constructor(plan: AuditPlan, o: PipelineOptions = {}) {
    this.#plan = plan;
    this.#o = o;
    this.instance = (o.instance ?? process.env.PORTCULLIS_INSTANCE ?? os.hostname()).replace(/[^A-Za-z0-9_.]/g, '_');
    this.#ids = new EventIds(`${this.instance}.${process.pid.toString(36)}`);
    this.#logger = o.logger;
    this.#head = chainHeadFor(plan, this.instance);
    this.#onCheckpoint = o.onCheckpoint ?? ((h) => this.#logger?.info({ audit: h }, 'audit checkpoint'));
    if (o.sinks) {
      this.#dispatchers = o.sinks.map((sink) => this.#dispatcher(sink, plan.spoolDir));
      this.#keys = o.sinks.map(() => undefined);
    } else {
      this.#dispatchers = plan.sinks.map((c) => this.#dispatcher(createSink(c, o.syncIo), plan.spoolDir));
      this.#keys = plan.sinks.map((c) => sinkKey(c, plan.spoolDir));
    }
    if (o.bus) this.#unsubscribe = o.bus.subscribe((e) => this.recordSystem(e));
    this.#armCheckpoints();
  }

  /** The audit section running now (a reload replaces it once its sinks are in place). */
  get plan(): AuditPlan {
    return this.#plan;
  }

  get dispatchers(): readonly SinkDispatcher[] {
    return this.#dispatchers;
  }

  #dispatcher(sink: AuditSink, spoolDir: string): SinkDispatcher {
    const o = this.#o;
    return new SinkDispatcher(sink, path.join(spoolDir, `${sink.name}.spool.ndjson`), {
      maxQueue: o.maxQueue,
      retryMs: o.retryMs,
      onHealth: (failed, error) => {
        const ev: SystemEvent = failed ? { type: 'sink.failed', sink: sink.name, error: error ?? '' } : { type: 'sink.recovered', sink: sink.name };
        if (o.onSinkHealth) return o.onSinkHealth(ev);
        this.#logger?.[failed ? 'warn' : 'info']({ sink: sink.name, error }, failed ? 'audit sink failed, spooling' : 'audit sink recovered');
        if (o.bus) o.bus.publish(ev);
        else this.recordSystem(ev);
      },
    });
  }

  /** Signer and interval timer from the running plan's checkpoint settings (none without chain). */
  #armCheckpoints(): void {
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    const cp = this.#plan.chain ? this.#plan.checkpoint : undefined;
    this.#signer = cp ? new CheckpointSigner(cp.key, cp.alg) : undefined;
    if (cp === undefined) return;
    this.#checkpointTimer = setInterval(() => {
      if (this.#head.seq - 1 > this.#checkpointSeq) this.checkpoint('interval');
    }, cp.intervalMs);
    this.#checkpointTimer.unref();
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
    // While sinks switch, the head does not yet cover the held batches: a checkpoint now would sign
    // a head other than the event before it.
    if (signer === undefined || this.#checkpointing || this.#held !== undefined) return;
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
      this.#onCheckpoint(written);
    } finally {
      this.#checkpointing = false;
    }
  }

  /**
   * Opens what the sinks can open ahead of the first event (a file sink's file). A sink that
   * cannot open now is not an error here: its first write fails and the dispatcher spools.
   */
  async open(): Promise<void> {
    await Promise.all(this.#dispatchers.map((d) => d.sink.open?.().catch(() => undefined)));
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
    if (this.#held !== undefined) {
      this.#held.push(records as AuditRecord[]);
      return;
    }
    const lines = new Array<string>(records.length);
    const chain = this.#plan.chain;
    let { seq, prev } = this.#head;
    const inst = JSON.stringify(this.instance);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const [head, tail] = this.#format.halves(r, this.#ids.next(r.time));
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
    for (const d of this.#dispatchers) d.push(lines);
    const every = this.#plan.checkpoint?.events ?? 0;
    if (every > 0 && chain && seq - 1 - this.#checkpointSeq >= every) this.checkpoint('events');
  }

  /** Called on every Plan swap: a changed audit section is applied (see reconfigure). */
  onPlan(next: AuditPlan | undefined): void {
    if (next === undefined || next.fingerprint === this.#plan.fingerprint) return;
    this.reconfigure(next).catch((err: unknown) => this.#logger?.error({ err }, 'audit reconfiguration failed'));
  }

  /**
   * Switches to a changed audit section without losing or reordering an event. Everything written
   * before goes out under the old settings, ending with a checkpoint signed by the old key when
   * there is one; sinks that did not change stay as they are; retired sinks get what was queued for
   * them (or keep it in their spool) before new ones open, so a spool file is never shared; events
   * written meanwhile wait in memory and then go to the new sinks. The chain runs on: a new trail
   * continues from the old one's head, so both verify, alone and together; a file that already holds
   * a chain is continued from its own last event, as a restart would.
   */
  reconfigure(next: AuditPlan): Promise<void> {
    // With no switch in flight this one starts now, so what is written right after the call already
    // waits for the new sinks.
    const run = this.#switching === 0 ? this.#switch(next) : this.#switches.then(() => this.#switch(next));
    this.#switching++;
    const done = run.finally(() => this.#switching--);
    this.#switches = done.catch(() => undefined);
    return done;
  }

  async #switch(next: AuditPlan): Promise<void> {
    const prev = this.#plan;
    if (this.#closed || next.fingerprint === prev.fingerprint) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    this.checkpoint('reload');
    this.#held = [];
    try {
      const wanted = new Set(next.sinks.map((c) => sinkKey(c, next.spoolDir)));
      const kept = new Map<string, SinkDispatcher>();
      const retired: SinkDispatcher[] = [];
      const unmanaged: SinkDispatcher[] = [];
      this.#dispatchers.forEach((d, i) => {
        const key = this.#keys[i];
        if (key === undefined) unmanaged.push(d);
        else if (wanted.has(key) && !kept.has(key)) kept.set(key, d);
        else retired.push(d);
      });
      await Promise.all(retired.map((d) => d.close(RETIRE_MS).catch((err: unknown) => this.#logger?.error({ err, sink: d.sink.name }, 'closing a retired audit sink failed'))));
      const added: SinkDispatcher[] = [];
      const dispatchers = [...unmanaged];
      const keys: (string | undefined)[] = unmanaged.map(() => undefined);
      for (const c of next.sinks) {
        const key = sinkKey(c, next.spoolDir);
        let d = kept.get(key);
        if (d === undefined) {
          d = this.#dispatcher(createSink(c, this.#o.syncIo), next.spoolDir);
          added.push(d);
        }
        dispatchers.push(d);
        keys.push(key);
      }
      await Promise.all(added.map((d) => d.sink.open?.().catch(() => undefined)));
      this.#dispatchers = dispatchers;
      this.#keys = keys;
      const head = this.#continuedHead(prev, next);
      // Another file's chain: this process has signed nothing of it yet.
      if (head !== this.#head) this.#checkpointSeq = -1;
      this.#head = head;
      this.#plan = next;
      this.#armCheckpoints();
      this.#logger?.info({ sinks: next.sinks.map((s) => s.name), kept: kept.size, added: added.length, retired: retired.length }, 'audit section applied');
    } finally {
      const held = this.#held;
      this.#held = undefined;
      for (const records of held) this.write(records);
    }
  }

  /** Where the chain goes on after a switch from `prev` to `next`. */
  #continuedHead(prev: AuditPlan, next: AuditPlan): ChainHead {
    if (!next.chain) return this.#head;
    // Chaining starts (again): as at startup, from the first file's last chained event.
    if (!prev.chain) return chainHeadFor(next, this.instance);
    const file = firstFile(next);
    // A file this pipeline was not writing that already ends with a chain is continued from its own
    // head (as a restart would), so it verifies on its own; an empty one continues the running chain.
    if (file !== undefined && !prev.sinks.some((s) => s.kind === 'file' && s.path === file)) {
      const there = chainHeadFor(next, this.instance);
      if (there.seq > 0) return there;
    }
    return this.#head;
  }

  /** SIGTERM path: flush, drain every sink (or leave the rest in its durable spool), close. */
  async close(deadlineMs = 5000): Promise<void> {
    await this.#switches;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.flush();
    if (this.#checkpointTimer) clearInterval(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    // A cleanly stopped writer's trail ends with a signed head: an auditor can tell it from a cut.
    if (!this.#closed) this.checkpoint('shutdown');
    this.#closed = true;
    this.#unsubscribe?.();
    await Promise.all(this.#dispatchers.map((d) => d.close(deadlineMs)));
  }
}
