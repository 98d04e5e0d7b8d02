// One per sink: a bounded in-memory queue in front of the sink, the sink's spool behind it. Order
// is kept by one rule: while anything is spooled, new events are spooled too, and the spool is
// replayed (oldest first) before the memory queue is written again. Replay takes large batches
// (the sink splits them into its own requests), so a backlog drains faster than events arrive.
import type { EventBus } from '../events.js';
import { auditBacklogAge, auditBacklogEvents, auditEventsTotal, auditQueueDepth, auditSpooledEvents } from '../observability/metrics.js';
import { type AuditSink, PartialWriteError } from './sink.js';
import { Spool } from './spool.js';

export interface DispatcherOptions {
  readonly maxQueue?: number | undefined;
  readonly maxBatch?: number | undefined;
  /** Events per replay batch from the spool (default 20,000). */
  readonly maxReplayBatch?: number | undefined;
  readonly retryMs?: number | undefined;
  readonly maxRetryMs?: number | undefined;
  readonly bus?: EventBus | undefined;
  /** Called on failure/recovery transitions (the pipeline turns them into audit events). */
  readonly onHealth?: ((failed: boolean, error?: string) => void) | undefined;
}

export class SinkDispatcher {
  readonly sink: AuditSink;
  readonly #spool: Spool;
  readonly #o: DispatcherOptions;
  #queue: string[] = [];
  #running: Promise<void> | undefined;
  #failed = false;
  #delay: number;
  #timer: NodeJS.Timeout | undefined;
  #closing = false;
  #failures = 0;
  readonly #written;
  readonly #spooled;
  readonly #depth;
  readonly #spoolGauge;
  readonly #ageGauge;
  readonly #backlogGauge;
  /** Ticks the backlog-age gauge while anything is spooled (the age grows without any event). */
  #ageTimer: NodeJS.Timeout | undefined;
  /** The memory batch the sink is being tried with, and whether push() spooled it meanwhile. */
  #inFlight: readonly string[] | undefined;
  #inFlightSpooled = false;

  constructor(sink: AuditSink, spoolFile: string, o: DispatcherOptions = {}) {
    this.sink = sink;
    this.#o = o;
    this.#spool = new Spool(spoolFile);
    this.#delay = o.retryMs ?? 200;
    this.#written = auditEventsTotal.labels(sink.name, 'written');
    this.#spooled = auditEventsTotal.labels(sink.name, 'spooled');
    this.#depth = auditQueueDepth.labels(sink.name);
    this.#spoolGauge = auditSpooledEvents.labels(sink.name);
    this.#ageGauge = auditBacklogAge.labels(sink.name);
    this.#backlogGauge = auditBacklogEvents.labels(sink.name);
    this.#gauges();
    if (this.#spool.count > 0) this.#kick();
  }

  /** Age in seconds of the oldest event not yet delivered from the spool (0 when it is empty). */
  get backlogAgeSeconds(): number {
    const oldest = this.#spool.oldest;
    return oldest === undefined ? 0 : Math.max(0, (Date.now() - oldest) / 1000);
  }

  #gauges(): void {
    const spooled = this.#spool.count;
    this.#spoolGauge.set(spooled);
    this.#backlogGauge.set(spooled + this.#queue.length);
    this.#ageGauge.set(this.backlogAgeSeconds);
    if (spooled > 0 && this.#ageTimer === undefined && !this.#closing) {
      this.#ageTimer = setInterval(() => this.#gauges(), 1000);
      this.#ageTimer.unref();
    } else if (spooled === 0 && this.#ageTimer !== undefined) {
      clearInterval(this.#ageTimer);
      this.#ageTimer = undefined;
    }
  }

  get queued(): number {
    return this.#queue.length;
  }
  get spooled(): number {
    return this.#spool.count;
  }

  push(lines: readonly string[]): void {
    if (this.#spool.count > 0 || this.#queue.length + lines.length > (this.#o.maxQueue ?? 10_000)) {
      // Behind or failing: move what waits in memory behind the spool, keeping order. A memory
      // batch the sink is still trying goes first: were it to fail after this, it would otherwise
      // land behind the events that came after it.
      const ahead = this.#inFlight !== undefined && !this.#inFlightSpooled ? this.#inFlight : [];
      if (ahead.length > 0) this.#inFlightSpooled = true;
      this.#toSpool([...ahead, ...this.#queue, ...lines]);
      this.#queue = [];
    } else {
      for (const l of lines) this.#queue.push(l);
    }
    this.#depth.set(this.#queue.length);
    this.#backlogGauge.set(this.#spool.count + this.#queue.length);
    this.#kick();
  }

  #toSpool(lines: readonly string[]): void {
    if (lines.length === 0) return;
    this.#spool.append(lines);
    this.#spooled.inc(lines.length);
    this.#gauges();
  }

  #kick(): void {
    if (this.#running || this.#timer) return;
    this.#running = this.#pump().finally(() => {
      this.#running = undefined;
      if (this.#timer === undefined && (this.#queue.length > 0 || this.#spool.count > 0) && !this.#failed) this.#kick();
    });
  }

  async #pump(): Promise<void> {
    const max = this.#o.maxBatch ?? 1000;
    const replay = this.#o.maxReplayBatch ?? 20_000;
    for (;;) {
      if (this.#spool.count > 0) {
        const { lines, bytes, ends } = this.#spool.peek(replay);
        if (lines.length === 0) return;
        const delivered = await this.#attempt(lines);
        if (delivered < lines.length) {
          if (delivered > 0) this.#spool.consume(ends[delivered - 1]!, delivered);
          this.#gauges();
          return;
        }
        this.#spool.consume(bytes, lines.length);
        this.#gauges();
        continue;
      }
      if (this.#queue.length === 0) return;
      const lines = this.#queue.splice(0, max);
      this.#depth.set(this.#queue.length);
      this.#backlogGauge.set(this.#queue.length);
      this.#inFlight = lines;
      this.#inFlightSpooled = false;
      const delivered = await this.#attempt(lines);
      const spooled = this.#inFlightSpooled;
      this.#inFlight = undefined;
      if (spooled) {
        // push() put this batch at the head of the spool meanwhile: drop what the sink took.
        if (delivered > 0) this.#spool.consume(this.#spool.peek(delivered).ends[delivered - 1]!, delivered);
        this.#gauges();
        if (delivered < lines.length) return;
        continue;
      }
      if (delivered < lines.length) {
        this.#toSpool([...(delivered === 0 ? lines : lines.slice(delivered)), ...this.#queue]);
        this.#queue = [];
        this.#depth.set(0);
        return;
      }
    }
  }

  /** How many leading lines of the batch the sink stored (all of them, or fewer after a failure). */
  async #attempt(lines: readonly string[]): Promise<number> {
    try {
      await this.sink.write(lines);
    } catch (err) {
      this.#failures++;
      const delivered = err instanceof PartialWriteError ? Math.min(err.delivered, lines.length) : 0;
      if (delivered > 0) this.#written.inc(delivered);
      if (!this.#failed) {
        this.#failed = true;
        this.#o.onHealth?.(true, (err as Error).message);
      }
      this.#retryLater();
      return delivered;
    }
    this.#written.inc(lines.length);
    this.#delay = this.#o.retryMs ?? 200;
    if (this.#failed) {
      this.#failed = false;
      this.#o.onHealth?.(false);
    }
    return lines.length;
  }

  #retryLater(): void {
    if (this.#closing) return;
    const wait = this.#delay / 2 + Math.random() * (this.#delay / 2);
    this.#delay = Math.min(this.#delay * 2, this.#o.maxRetryMs ?? 5000);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#kick();
    }, wait);
    this.#timer.unref();
  }

  /** Writes what is queued (or leaves it spooled when the sink is down) and closes the sink. */
  async close(deadlineMs = 5000): Promise<void> {
    const until = Date.now() + deadlineMs;
    const failuresBefore = this.#failures;
    // Try now rather than wait out a backoff; one more failure means the sink is still down and the
    // rest stays in the durable spool for the next start.
    while ((this.#queue.length > 0 || this.#spool.count > 0 || this.#running) && Date.now() < until) {
      if (this.#running) await this.#running;
      else {
        if (this.#timer) clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#kick();
        await this.#running;
      }
      if (this.#failures > failuresBefore) break;
    }
    this.#closing = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#toSpool(this.#queue);
    this.#queue = [];
    if (this.#ageTimer) clearInterval(this.#ageTimer);
    this.#ageTimer = undefined;
    this.#spool.close();
    await this.sink.close();
  }
}
