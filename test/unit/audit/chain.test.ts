import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { canonicalWithoutHash, chainHash, GENESIS } from '../../../src/audit/chain.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { verifyFiles } from '../../../src/audit/verify.js';
import { planFor, requestRecord, tmpDir } from '../../helpers/audit.js';

async function writeEvents(file: string, dir: string, n: number, start = 0): Promise<void> {
  const p = new AuditPipeline(planFor(dir, [{ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'batch' }]), { instance: 'test' });
  for (let i = start; i < start + n; i++) {
    p.push(requestRecord(i, i % 3 === 0 ? { allowed: false, code: 'PERMISSION_DENIED', permission: 'reports:read', status: 403 } : {}));
    if (i % 4 === 0) p.recordSystem({ type: 'key.revoked', keyId: `k${i}` });
  }
  await p.close();
}

function lines(file: string): string[] {
  return readFileSync(file, 'utf8').trimEnd().split('\n');
}

describe('hash chain', () => {
  it('hashes exactly sha256(prev ‖ canonical JSON without chain.hash), starting at genesis', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    await writeEvents(file, dir, 5);
    const events = lines(file).map((l) => JSON.parse(l) as Record<string, any>);
    expect(events[0]!.chain.prev).toBe(GENESIS);
    let prev = GENESIS;
    events.forEach((e, i) => {
      expect(e.v).toBe(1);
      expect(e.chain.seq).toBe(i);
      expect(e.chain.prev).toBe(prev);
      expect(e.chain.hash).toBe(chainHash(prev, canonicalWithoutHash(e)));
      prev = e.chain.hash;
    });
    // The written line is already canonical: key order sorted, no whitespace.
    const first = lines(file)[0]!;
    const { hash: _h, ...rest } = events[0]!.chain;
    expect(first.replace(`"hash":"${events[0]!.chain.hash}",`, '')).toBe(canonicalWithoutHash({ ...events[0]!, chain: rest }));
  });

  it("continues the file's chain after a restart", async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    await writeEvents(file, dir, 4);
    const before = lines(file).length;
    await writeEvents(file, dir, 4, 100);
    const all = lines(file).map((l) => JSON.parse(l) as Record<string, any>);
    expect(all.length).toBeGreaterThan(before);
    expect(all[before]!.chain.prev).toBe(all[before - 1]!.chain.hash);
    expect(all[before]!.chain.seq).toBe(before);
    expect(verifyFiles([file])).toMatchObject({ ok: true, events: all.length });
  });

  it('verifies rotated segments in order as one chain', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    await writeEvents(file, dir, 30);
    const all = lines(file);
    writeFileSync(path.join(dir, 'a'), `${all.slice(0, 10).join('\n')}\n`);
    writeFileSync(path.join(dir, 'b'), `${all.slice(10).join('\n')}\n`);
    expect(verifyFiles([path.join(dir, 'a'), path.join(dir, 'b')]).ok).toBe(true);
    const wrongOrder = verifyFiles([path.join(dir, 'b'), path.join(dir, 'a')]);
    expect(wrongOrder.ok).toBe(false);
  });

  describe('verify finds the first broken link', () => {
    async function tampered(change: (l: string[]) => string[]) {
      const dir = tmpDir();
      const file = path.join(dir, 'audit.ndjson');
      await writeEvents(file, dir, 20);
      const original = lines(file);
      expect(verifyFiles([file]).ok).toBe(true);
      writeFileSync(file, `${change([...original]).join('\n')}\n`);
      return { file, result: verifyFiles([file]) };
    }

    it('reports an edited event with its line', async () => {
      const { file, result } = await tampered((l) => {
        l[7] = l[7]!.replace('"status":200', '"status":201').replace('"status":403', '"status":404');
        return l;
      });
      expect(result.ok).toBe(false);
      expect(result.broken).toMatchObject({ file, line: 8, kind: 'edited' });
    });

    it('reports a deleted event at the line after the gap', async () => {
      const { result } = await tampered((l) => {
        l.splice(5, 1);
        return l;
      });
      expect(result.broken).toMatchObject({ line: 6, kind: 'deleted' });
    });

    it('reports an inserted duplicate', async () => {
      const { result } = await tampered((l) => {
        l.splice(9, 0, l[3]!);
        return l;
      });
      expect(result.broken).toMatchObject({ line: 10, kind: 'inserted' });
    });

    it('reports an inserted forgery even when its own hash is valid', async () => {
      const { result } = await tampered((l) => {
        const prev = JSON.parse(l[11]!) as Record<string, any>;
        const forged: Record<string, any> = { ...JSON.parse(l[12]!), id: 'forged' };
        forged.chain = { instance: 'test', prev: prev.chain.hash, seq: prev.chain.seq + 1 };
        forged.chain = { ...forged.chain, hash: chainHash(prev.chain.hash, canonicalWithoutHash(forged)) };
        l.splice(12, 0, JSON.stringify(forged));
        return l;
      });
      expect(result.broken).toMatchObject({ line: 13, kind: 'inserted' });
    });

    it('reports two swapped events as reordered', async () => {
      const { result } = await tampered((l) => {
        [l[14], l[15]] = [l[15]!, l[14]!];
        return l;
      });
      expect(result.broken).toMatchObject({ line: 15, kind: 'reordered' });
    });
  });
});
