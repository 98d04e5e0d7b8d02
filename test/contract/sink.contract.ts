// The one contract every audit sink meets. Run by sink.test.ts against all four sinks.
import { describe, expect, it } from 'vitest';
import type { AuditSink } from '../../src/audit/sink.js';

interface SinkHarness {
  readonly sink: AuditSink;
  /** Every line the destination holds, in the order stored. */
  stored(): Promise<string[]>;
  cleanup?(): Promise<void>;
}

export interface SinkFactory {
  make(): Promise<SinkHarness>;
  /** A sink whose destination cannot take writes (omitted for stdout, which cannot refuse). */
  unreachable?(): Promise<AuditSink>;
}

const line = (i: number, batch: string) => JSON.stringify({ id: `${batch}-${String(i).padStart(4, '0')}`, v: 1, n: i, text: 'ünïcode ✓' });

async function settled(h: SinkHarness, n: number): Promise<string[]> {
  const until = Date.now() + 5000;
  let got = await h.stored();
  while (got.length < n && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 25));
    got = await h.stored();
  }
  return got;
}

export function sinkContract(name: string, factory: SinkFactory): void {
  describe(`audit sink contract: ${name}`, () => {
    it('stores every line of a batch, in order, byte for byte', async () => {
      const h = await factory.make();
      const batch = Array.from({ length: 50 }, (_, i) => line(i, 'a'));
      await h.sink.write(batch);
      await h.sink.close();
      expect(await settled(h, 50)).toEqual(batch);
      await h.cleanup?.();
    });

    it('keeps batch order across many writes and ignores an empty batch', async () => {
      const h = await factory.make();
      const all: string[] = [];
      for (let b = 0; b < 10; b++) {
        const batch = Array.from({ length: 20 }, (_, i) => line(b * 20 + i, 'b'));
        all.push(...batch);
        await h.sink.write(batch);
        await h.sink.write([]);
      }
      await h.sink.close();
      expect(await settled(h, all.length)).toEqual(all);
      await h.cleanup?.();
    });

    it('rejects a batch it could not store (so the dispatcher spools it)', async () => {
      if (!factory.unreachable) {
        // stdout cannot refuse a write; the other sinks must.
        expect(name).toBe('stdout');
        return;
      }
      const sink = await factory.unreachable();
      await expect(sink.write([line(0, 'c')])).rejects.toBeInstanceOf(Error);
      await sink.close();
    });
  });
}
