// A sink's durable on-disk spool: an append-only NDJSON file, fsync'd before an append returns
// (an event is "accepted" once it is here). Replay reads from a byte offset, so lines appended
// while a replay is in flight are kept; the file is truncated once everything was delivered.
import { appendFileSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, statSync, truncateSync } from 'node:fs';
import path from 'node:path';

export class Spool {
  readonly file: string;
  #offset = 0;
  #count = 0;

  constructor(file: string) {
    this.file = file;
    try {
      const text = readFileSync(file, 'utf8');
      this.#count = countLines(text);
    } catch {
      this.#count = 0;
    }
  }

  /** Events waiting in the spool. */
  get count(): number {
    return this.#count;
  }

  append(lines: readonly string[]): void {
    if (lines.length === 0) return;
    mkdirSync(path.dirname(this.file), { recursive: true });
    const fd = openSync(this.file, 'a', 0o600);
    try {
      appendFileSync(fd, `${lines.join('\n')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.#count += lines.length;
  }

  /** Up to `max` complete lines from the replay position, and the bytes they span. */
  peek(max: number): { lines: string[]; bytes: number } {
    if (this.#count === 0) return { lines: [], bytes: 0 };
    let buf: Buffer;
    try {
      buf = readFileSync(this.file).subarray(this.#offset);
    } catch {
      return { lines: [], bytes: 0 }; // the spool file was removed under us: nothing to replay
    }
    const lines: string[] = [];
    let pos = 0;
    while (lines.length < max) {
      const nl = buf.indexOf(10, pos);
      if (nl < 0) break;
      const line = buf.subarray(pos, nl).toString('utf8');
      if (line.trim() !== '') lines.push(line);
      pos = nl + 1;
    }
    return { lines, bytes: pos };
  }

  /** Marks `bytes` (from peek) delivered. */
  consume(bytes: number, lines: number): void {
    this.#offset += bytes;
    this.#count = Math.max(0, this.#count - lines);
    if (this.#offset >= statSync(this.file).size) {
      truncateSync(this.file, 0);
      this.#offset = 0;
      this.#count = 0;
    }
  }
}

function countLines(text: string): number {
  let n = 0;
  for (const l of text.split('\n')) if (l.trim() !== '') n++;
  return n;
}
