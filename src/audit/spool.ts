// A sink's durable on-disk spool: an append-only NDJSON file, fsync'd before an append returns
// (an event is "accepted" once it is here). Replay reads forward from a byte offset, a bounded
// window at a time, so its cost is linear in what it replays (re-reading the whole file per batch
// made replay slow down as the backlog grew, until it fell behind any steady load). Lines appended
// while a replay is in flight are kept; the file is truncated once everything was delivered.
import { closeSync, fdatasyncSync, fstatSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';

/** Bytes read per replay window; a line longer than this is read whole anyway. */
const WINDOW = 4 * 1024 * 1024;

/** One append: where it ends in the file and when its oldest event was recorded. */
interface Segment {
  readonly end: number;
  readonly time: number;
}

export class Spool {
  readonly file: string;
  #fd: number | undefined;
  #size = 0;
  #offset = 0;
  #count = 0;
  // Appends still (partly) in the file, oldest first: the backlog's age without reading the file.
  #segments: Segment[] = [];

  constructor(file: string) {
    this.file = file;
    let fd: number;
    try {
      fd = openSync(file, 'r');
    } catch {
      return;
    }
    try {
      const size = fstatSync(fd).size;
      let first: string | undefined;
      let count = 0;
      // Scanned as bytes: a window may end inside a multi-byte character, and only "\n" matters.
      const buf = Buffer.allocUnsafe(Math.min(WINDOW, Math.max(size, 1)));
      let lineStart = 0;
      let blank = true;
      for (let pos = 0; pos < size; ) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        for (let i = 0; i < n; i++) {
          const c = buf[i]!;
          if (c === 10) {
            if (!blank) {
              count++;
              if (first === undefined) first = readLine(fd, lineStart, pos + i);
            }
            lineStart = pos + i + 1;
            blank = true;
          } else if (c !== 32 && c !== 9 && c !== 13) blank = false;
        }
        pos += n;
      }
      // A torn last line is an append that never returned (a crash mid-write): not accepted, and
      // left in place it would fuse with the next append into one corrupt line.
      if (lineStart < size) {
        closeSync(fd);
        fd = openSync(file, 'r+');
        ftruncateSync(fd, lineStart);
      }
      this.#size = lineStart;
      this.#count = count;
      if (count > 0) this.#segments.push({ end: lineStart, time: eventTime(first!) ?? Date.now() });
    } finally {
      closeSync(fd);
    }
  }

  /** Events waiting in the spool. */
  get count(): number {
    return this.#count;
  }

  /** When the oldest waiting event was recorded (ms since the epoch), or undefined when empty. */
  get oldest(): number | undefined {
    return this.#count === 0 ? undefined : this.#segments[0]?.time;
  }

  #writer(): number {
    if (this.#fd !== undefined) return this.#fd;
    mkdirSync(path.dirname(this.file), { recursive: true });
    const fd = openSync(this.file, 'a+', 0o600);
    this.#size = fstatSync(fd).size;
    this.#fd = fd;
    return fd;
  }

  append(lines: readonly string[]): void {
    if (lines.length === 0) return;
    const fd = this.#writer();
    const buf = Buffer.from(`${lines.join('\n')}\n`, 'utf8');
    for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
    fdatasyncSync(fd);
    this.#size += buf.length;
    this.#count += lines.length;
    this.#segments.push({ end: this.#size, time: eventTime(lines[0]!) ?? Date.now() });
  }

  /**
   * Up to `max` complete lines from the replay position, the bytes they span, and where each line
   * ends (bytes from the replay position, for a partly delivered batch).
   */
  peek(max: number): { lines: string[]; bytes: number; ends: number[] } {
    if (this.#count === 0 || this.#offset >= this.#size) return { lines: [], bytes: 0, ends: [] };
    let fd: number;
    try {
      fd = this.#writer();
    } catch {
      return { lines: [], bytes: 0, ends: [] }; // the spool cannot be opened: nothing to replay now
    }
    const lines: string[] = [];
    const ends: number[] = [];
    let window = WINDOW;
    for (;;) {
      const want = Math.min(window, this.#size - this.#offset);
      const buf = Buffer.allocUnsafe(want);
      let got = 0;
      while (got < want) {
        const n = readSync(fd, buf, got, want - got, this.#offset + got);
        if (n <= 0) break;
        got += n;
      }
      let pos = 0;
      while (lines.length < max) {
        const nl = buf.indexOf(10, pos);
        if (nl < 0 || nl >= got) break;
        if (nl > pos) {
          const line = buf.toString('utf8', pos, nl);
          if (line.trim() !== '') {
            lines.push(line);
            ends.push(nl + 1);
          }
        }
        pos = nl + 1;
      }
      // A single line longer than the window: read a larger one rather than stall the replay.
      if (pos === 0 && got === window && this.#offset + got < this.#size) {
        window *= 2;
        continue;
      }
      return { lines, bytes: pos, ends };
    }
  }

  /** Marks `bytes` (from peek) delivered. */
  consume(bytes: number, lines: number): void {
    this.#offset += bytes;
    this.#count = Math.max(0, this.#count - lines);
    while (this.#segments.length > 0 && this.#segments[0]!.end <= this.#offset) this.#segments.shift();
    if (this.#offset >= this.#size) {
      if (this.#fd !== undefined) ftruncateSync(this.#fd, 0);
      this.#size = 0;
      this.#offset = 0;
      this.#count = 0;
      this.#segments = [];
    }
  }

  close(): void {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) closeSync(fd);
  }
}

function readLine(fd: number, start: number, end: number): string {
  const len = Math.min(end - start, 64 * 1024);
  const buf = Buffer.allocUnsafe(len);
  readSync(fd, buf, 0, len, start);
  return buf.toString('utf8');
}

/** The `time` of an event line, or undefined for a line that is not one. */
function eventTime(line: string): number | undefined {
  const at = line.indexOf('"time":"');
  if (at < 0) return undefined;
  const t = Date.parse(line.slice(at + 8, line.indexOf('"', at + 8)));
  return Number.isFinite(t) ? t : undefined;
}
