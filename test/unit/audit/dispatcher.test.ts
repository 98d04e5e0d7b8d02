import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SinkDispatcher } from '../../../src/audit/dispatcher.js';
import { type AuditSink, PartialWriteError } from '../../../src/audit/sink.js';
import { FileSink } from '../../../src/audit/sinks/file.js';
import { tmpDir } from '../../helpers/audit.js';

class FlakySink implements AuditSink {
  readonly name = 'flaky';
  down = false;
  readonly got: string[] = [];
  async write(batch: readonly string[]): Promise<void> {
    if (this.down) throw new Error('down');
    this.got.push(...batch);
  }
  async close(): Promise<void> {}
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('sink dispatcher', () => {
  it('spools while the sink is down and replays in order when it recovers', async () => {
    const dir = tmpDir();
    const sink = new FlakySink();
    const health: boolean[] = [];
    const d = new SinkDispatcher(sink, path.join(dir, 'flaky.spool'), { retryMs: 20, maxRetryMs: 50, onHealth: (f) => health.push(f) });
    d.push(['a', 'b']);
    await sleep(20);
    sink.down = true;
    d.push(['c']);
    await sleep(30);
    d.push(['d', 'e']);
    expect(d.spooled).toBeGreaterThan(0);
    sink.down = false;
    await d.close(3000);
    expect(sink.got).toEqual(['a', 'b', 'c', 'd', 'e']);
    expect(health).toEqual([true, false]);
    expect(d.spooled).toBe(0);
  });

  it('overflows a full memory queue into the spool instead of dropping', async () => {
    const dir = tmpDir();
    const sink = new FlakySink();
    const d = new SinkDispatcher(sink, path.join(dir, 's.spool'), { maxQueue: 3, retryMs: 10 });
    d.push(['1', '2']);
    d.push(['3', '4', '5']);
    await d.close(3000);
    expect(sink.got).toEqual(['1', '2', '3', '4', '5']);
  });

  it('leaves undelivered events in the spool at close when the sink stays down', async () => {
    const dir = tmpDir();
    const sink = new FlakySink();
    sink.down = true;
    const file = path.join(dir, 'down.spool');
    const d = new SinkDispatcher(sink, file, { retryMs: 10 });
    d.push(['x', 'y']);
    await d.close(300);
    expect(readFileSync(file, 'utf8')).toBe('x\ny\n');
    sink.down = false;
    const again = new SinkDispatcher(sink, file, { retryMs: 10 });
    await again.close(2000);
    expect(sink.got).toEqual(['x', 'y']);
  });

  it('does not deliver again the part of a batch a sink stored before it failed', async () => {
    const dir = tmpDir();
    const got: string[] = [];
    let failAfter = 2;
    const sink: AuditSink = {
      name: 'split',
      async write(batch) {
        const n = Math.min(failAfter, batch.length);
        got.push(...batch.slice(0, n));
        if (n < batch.length) {
          failAfter = Infinity;
          throw n === 0 ? new Error('down') : new PartialWriteError(n, new Error('down'));
        }
      },
      async close() {},
    };
    const d = new SinkDispatcher(sink, path.join(dir, 'split.spool'), { retryMs: 10 });
    d.push(['1', '2', '3', '4']);
    await sleep(100); // the retry, after its backoff
    await d.close(3000);
    expect(got).toEqual(['1', '2', '3', '4']);
  });

  it.each(['fails', 'succeeds'])('keeps order and sends nothing twice when the memory queue overflows while a batch is in flight (it %s)', async (outcome) => {
    const dir = tmpDir();
    const got: string[] = [];
    let release: (() => void) | undefined;
    let calls = 0;
    const sink: AuditSink = {
      name: 'slow',
      async write(batch) {
        if (++calls === 1) {
          await new Promise<void>((r) => (release = r));
          if (outcome === 'fails') throw new Error('down');
        }
        got.push(...batch);
      },
      async close() {},
    };
    const d = new SinkDispatcher(sink, path.join(dir, 'order.spool'), { maxQueue: 2, retryMs: 10 });
    d.push(['1', '2']);
    await sleep(5);
    d.push(['3', '4', '5']); // overflow while '1', '2' are in flight
    release!();
    await sleep(100);
    await d.close(3000);
    expect(got).toEqual(['1', '2', '3', '4', '5']);
  });

  it('drops a torn last spool line (an append that never returned) instead of fusing it with the next', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'torn.spool');
    writeFileSync(file, 'a\nb\n{"half');
    const sink = new FlakySink();
    const d = new SinkDispatcher(sink, file, { retryMs: 10 });
    expect(d.spooled).toBe(2);
    d.push(['c']);
    await d.close(3000);
    expect(sink.got).toEqual(['a', 'b', 'c']);
  });
});

describe('file sink', () => {
  it.each([false, true])('rotates by size to timestamped files and deletes rotated files past retention (syncIo %s)', async (syncIo) => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    const s = new FileSink({ path: file, rotateBytes: 100, retainMs: 60_000, syncIo });
    for (let i = 0; i < 5; i++) await s.write(['x'.repeat(60)]);
    await s.close();
    const rotated = readdirSync(dir).filter((f) => f.startsWith('audit.ndjson.'));
    expect(rotated.length).toBeGreaterThanOrEqual(3);
    expect(readFileSync(file, 'utf8')).toBe(`${'x'.repeat(60)}\n`);
    const old = new FileSink({ path: file, rotateBytes: 100, retainMs: 1, syncIo });
    await sleep(5);
    await old.write(['y'.repeat(60)]);
    await old.write(['z'.repeat(60)]);
    await old.close();
    expect(readdirSync(dir).filter((f) => f.startsWith('audit.ndjson.')).length).toBeLessThanOrEqual(1);
  });
});
