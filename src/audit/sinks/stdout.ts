// NDJSON to stdout through pino's asynchronous destination (sonic-boom), one write per batch.
import pino from 'pino';
import type { AuditSink } from '../sink.js';

interface Destination {
  write(chunk: string): boolean;
  flushSync?(): void;
  flush?(cb: (err?: Error | null) => void): void;
  once(event: 'drain', fn: () => void): unknown;
}

export class StdoutSink implements AuditSink {
  readonly name: string;
  readonly #dest: Destination;

  /** `dest` defaults to fd 1; tests pass a file descriptor or stream to capture it. */
  constructor(opts: { name?: string; dest?: Destination | number } = {}) {
    this.name = opts.name ?? 'stdout';
    const d = opts.dest ?? 1;
    this.#dest = typeof d === 'number' ? (pino.destination({ dest: d, sync: false }) as unknown as Destination) : d;
  }

  async write(batch: readonly string[]): Promise<void> {
    if (batch.length === 0) return;
    if (!this.#dest.write(`${batch.join('\n')}\n`)) await new Promise<void>((r) => this.#dest.once('drain', r));
  }

  /** Waits until everything written so far has reached the descriptor (fd 1 itself stays open). */
  async close(): Promise<void> {
    const d = this.#dest;
    if (!d.flush) return;
    await new Promise<void>((r) => {
      const t = setTimeout(r, 2000); // never let a stuck descriptor hold up shutdown
      d.flush!(() => {
        clearTimeout(t);
        r();
      });
    });
  }
}
