// Append-only NDJSON file: one write per batch, rotation by size to `<path>.<UTC stamp>`, rotated
// files older than `retain` deleted, fsync per policy (always: every batch; batch: at most once a
// second; never: leave it to the OS).
import { closeSync, fdatasyncSync, promises as fsp, fstatSync, fsyncSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs';
import path from 'node:path';
import type { AuditSink } from '../sink.js';

export interface FileSinkOptions {
  readonly name?: string;
  readonly path: string;
  readonly rotateBytes?: number;
  readonly retainMs?: number;
  readonly fsync?: 'always' | 'batch' | 'never';
  /**
   * Write with synchronous calls. Only for a thread that does nothing else (the audit worker):
   * it saves the thread-pool round trip and the promise machinery per batch.
   */
  readonly syncIo?: boolean;
}

export class FileSink implements AuditSink {
  readonly name: string;
  readonly #o: FileSinkOptions;
  #fh: fsp.FileHandle | undefined;
  /** The descriptor in syncIo mode. */
  #fd: number | undefined;
  #size = 0;
  #lastSync = 0;

  constructor(o: FileSinkOptions) {
    this.#o = o;
    this.name = o.name ?? 'file';
  }

  async #open(): Promise<fsp.FileHandle> {
    if (this.#fh) return this.#fh;
    await fsp.mkdir(path.dirname(this.#o.path), { recursive: true });
    this.#fh = await fsp.open(this.#o.path, 'a', 0o600);
    this.#size = (await this.#fh.stat()).size;
    return this.#fh;
  }

  #openSync(): number {
    if (this.#fd !== undefined) return this.#fd;
    mkdirSync(path.dirname(this.#o.path), { recursive: true });
    const fd = openSync(this.#o.path, 'a', 0o600);
    this.#size = fstatSync(fd).size;
    this.#fd = fd;
    return fd;
  }

  async open(): Promise<void> {
    if (this.#o.syncIo) this.#openSync();
    else await this.#open();
  }

  async write(batch: readonly string[]): Promise<void> {
    if (batch.length === 0) return;
    const text = `${batch.join('\n')}\n`;
    const bytes = Buffer.byteLength(text);
    if (this.#o.syncIo) return this.#writeSync(text, bytes);
    let fh = await this.#open();
    const max = this.#o.rotateBytes ?? 0;
    if (max > 0 && this.#size > 0 && this.#size + bytes > max) {
      await this.#rotate();
      fh = await this.#open();
    }
    await fh.write(text);
    this.#size += bytes;
    const policy = this.#o.fsync ?? 'batch';
    const now = Date.now();
    if (policy === 'always' || (policy === 'batch' && now - this.#lastSync >= 1000)) {
      this.#lastSync = now;
      await fh.datasync();
    }
  }

  async #writeSync(text: string, bytes: number): Promise<void> {
    let fd = this.#openSync();
    const max = this.#o.rotateBytes ?? 0;
    if (max > 0 && this.#size > 0 && this.#size + bytes > max) {
      await this.#rotate();
      fd = this.#openSync();
    }
    writeSync(fd, text);
    this.#size += bytes;
    const policy = this.#o.fsync ?? 'batch';
    const now = Date.now();
    if (policy === 'always' || (policy === 'batch' && now - this.#lastSync >= 1000)) {
      this.#lastSync = now;
      fdatasyncSync(fd);
    }
  }

  async #rotate(): Promise<void> {
    await this.#closeFile();
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('.', '');
    // Two rotations in one millisecond must not overwrite each other.
    let target = `${this.#o.path}.${stamp}`;
    for (
      let n = 1;
      await fsp.access(target).then(
        () => true,
        () => false,
      );
      n++
    )
      target = `${this.#o.path}.${stamp}-${n}`;
    await fsp.rename(this.#o.path, target);
    const retain = this.#o.retainMs ?? 0;
    if (retain > 0) {
      const dir = path.dirname(this.#o.path);
      const base = `${path.basename(this.#o.path)}.`;
      for (const f of await fsp.readdir(dir)) {
        if (!f.startsWith(base)) continue;
        const full = path.join(dir, f);
        const st = await fsp.stat(full);
        if (Date.now() - st.mtimeMs > retain) await fsp.unlink(full);
      }
    }
  }

  async #closeFile(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) {
      fsyncSync(fd);
      closeSync(fd);
    }
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) {
      await fh.sync();
      await fh.close();
    }
  }

  async close(): Promise<void> {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd !== undefined) {
      try {
        fsyncSync(fd);
      } catch {
        // closing anyway: what was written is with the OS
      }
      closeSync(fd);
    }
    const fh = this.#fh;
    this.#fh = undefined;
    if (fh) {
      await fh.sync().catch(() => undefined);
      await fh.close();
    }
  }
}

/** The last complete line of a file (the chain head after a restart), or undefined. */
export function lastLine(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const size = fstatSync(fd).size;
    let chunk = 64 * 1024;
    for (;;) {
      const start = Math.max(0, size - chunk);
      const buf = Buffer.alloc(size - start);
      readSync(fd, buf, 0, buf.length, start);
      const lines = buf
        .toString('utf8')
        .split('\n')
        .filter((l) => l.trim() !== '');
      // A torn final line (crash mid-write) is not a head; the one before it is.
      for (let i = lines.length - 1; i >= (start === 0 ? 0 : 1); i--) {
        try {
          JSON.parse(lines[i]!);
          return lines[i];
        } catch {}
      }
      if (start === 0) return undefined;
      chunk *= 4;
    }
  } finally {
    closeSync(fd);
  }
}
