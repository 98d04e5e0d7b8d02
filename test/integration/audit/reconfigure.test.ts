// AuditPipeline.reconfigure, the in-place switch a reload makes: unchanged sinks stay as they are,
// events written during the switch wait and follow in order, and the chain runs on so that every
// file verifies. Real files, real verification.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { AuditPlan, SinkConfig } from '../../../src/audit/compile.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { verifyFiles } from '../../../src/audit/verify.js';
import { planFor, requestRecord, tmpDir } from '../../helpers/audit.js';

const file = (p: string): SinkConfig => ({ kind: 'file', name: 'file', path: p, rotateBytes: 0, retainMs: 0, fsync: 'batch' });
const plan = (dir: string, sinks: SinkConfig[], over: Partial<AuditPlan> = {}): AuditPlan => {
  const base = { ...planFor(dir, sinks), ...over };
  return { ...base, fingerprint: JSON.stringify({ sinks: base.sinks, redact: base.redact, chain: base.chain }) };
};
const paths = (p: string): string[] =>
  readFileSync(p, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { request: { path: string } | null }).request?.path ?? '-');

describe('reconfiguring a running audit pipeline', () => {
  it('keeps a sink whose settings did not change, writing on into the same file', async () => {
    const dir = tmpDir();
    const a = path.join(dir, 'a.ndjson');
    const first = plan(dir, [file(a)]);
    const p = new AuditPipeline(first, { instance: 'keep' });
    const before = p.dispatchers[0];
    p.write([requestRecord(1)]);
    await p.reconfigure(plan(dir, [file(a)], { redact: [...first.redact, 'apikey'] }));
    expect(p.dispatchers[0]).toBe(before);
    expect(p.plan.redact).toContain('apikey');
    p.write([requestRecord(2)]);
    await p.close();
    expect(paths(a)).toEqual(['/v1/reports/1', '/v1/reports/2']);
    expect(verifyFiles([a]).ok).toBe(true);
  });

  it('writes what arrives during the switch to the new sink, after everything before it, in order', async () => {
    const dir = tmpDir();
    const [a, b] = [path.join(dir, 'a.ndjson'), path.join(dir, 'b.ndjson')];
    const p = new AuditPipeline(plan(dir, [file(a)]), { instance: 'hold' });
    p.write([requestRecord(1), requestRecord(2)]);
    const switching = p.reconfigure(plan(dir, [file(b)]));
    p.write([requestRecord(3)]);
    p.push(requestRecord(4));
    await switching;
    p.push(requestRecord(5));
    await p.close();
    expect(paths(a)).toEqual(['/v1/reports/1', '/v1/reports/2']);
    expect(paths(b)).toEqual(['/v1/reports/3', '/v1/reports/4', '/v1/reports/5']);
    for (const files of [[a], [b], [a, b]]) expect(verifyFiles(files), files.join(' ')).toMatchObject({ ok: true });
    expect(verifyFiles([a, b]).events).toBe(5);
  });

  it('continues a file that already holds a chain from its own last event, so it verifies on its own', async () => {
    const dir = tmpDir();
    const [a, c] = [path.join(dir, 'a.ndjson'), path.join(dir, 'c.ndjson')];
    const earlier = new AuditPipeline(plan(dir, [file(c)]), { instance: 'cont' });
    earlier.write([requestRecord(100), requestRecord(101), requestRecord(102)]);
    await earlier.close();
    const p = new AuditPipeline(plan(dir, [file(a)]), { instance: 'cont' });
    p.write([requestRecord(1)]);
    await p.reconfigure(plan(dir, [file(c)]));
    p.write([requestRecord(2)]);
    await p.close();
    expect(paths(c)).toEqual(['/v1/reports/100', '/v1/reports/101', '/v1/reports/102', '/v1/reports/2']);
    expect(verifyFiles([c])).toMatchObject({ ok: true, events: 4 });
    expect(verifyFiles([a])).toMatchObject({ ok: true, events: 1 });
  });

  it('starts chaining from the new file when a reload turns the chain on', async () => {
    const dir = tmpDir();
    const a = path.join(dir, 'a.ndjson');
    const p = new AuditPipeline(plan(dir, [file(a)], { chain: false }), { instance: 'on' });
    p.write([requestRecord(1)]);
    await p.reconfigure(plan(dir, [file(path.join(dir, 'b.ndjson'))]));
    p.write([requestRecord(2), requestRecord(3)]);
    await p.close();
    expect(verifyFiles([path.join(dir, 'b.ndjson')])).toMatchObject({ ok: true, events: 2, first: { seq: 0 } });
  });
});
