// The audit worker path (offthread.ts + the compiled worker.ts): the main thread appends flat
// records, the worker formats, chains and writes them. Needs the build (`npm run build`): the
// worker thread runs dist/audit/worker.js while this file drives the TypeScript main side.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { SinkConfig } from '../../../src/audit/compile.js';
import { AuditWorker } from '../../../src/audit/offthread.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { AuditRecorder } from '../../../src/audit/recorder.js';
import { verifyFiles } from '../../../src/audit/verify.js';
import type { RequestContext } from '../../../src/core/context.js';
import type { Principal } from '../../../src/core/principal.js';
import { EventBus, type SystemEvent } from '../../../src/events.js';
import { auditEventsTotal, auditSpooledEvents } from '../../../src/observability/metrics.js';
import { planFor, tmpDir } from '../../helpers/audit.js';
import { contextWith } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';
import { Receiver } from './receiver.js';

const entry = new URL('../../../dist/audit/worker.js', import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const fileSink = (file: string): SinkConfig => ({ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'batch' });
const lines = (file: string): string[] => readFileSync(file, 'utf8').trimEnd().split('\n');

// Shared objects, as the server has them (compiled routes, cached principals): runs of requests
// with the same ones travel in the short "same as before" wire form.
const PLAN = await planFrom(`version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: reports, match: { path: "/v1/reports/**" }, public: true, audit: all }
`);
const ROUTE = PLAN.routes[0];
const PRINCIPALS: Principal[] = [
  { subject: 'sub-"quoted"', tenant: 'acme', roles: [], permissions: [], keyId: 'k1', via: 'apiKey' },
  { subject: 'other', tenant: undefined, roles: [], permissions: [], keyId: undefined, via: 'jwt' },
];

function ctx(i: number): RequestContext {
  const denied = i % 7 === 0;
  const lost = i % 11 === 0;
  return contextWith(PLAN, {
    route: lost ? undefined : ROUTE,
    code: lost ? 'ROUTE_NOT_FOUND' : denied ? 'PERMISSION_DENIED' : undefined,
    principal: lost ? undefined : PRINCIPALS[(i >> 4) % 2],
    path: `/v1/reports/${i}`,
    query: i % 2 === 0 ? `?token=t${i}&page=2` : '',
    requestId: `req-${i}`,
    method: i % 13 === 0 ? 'POST' : 'GET',
    clientIp: i % 17 === 0 ? '10.0.0.2' : '10.0.0.1',
    permission: denied ? 'reports:read' : undefined,
  });
}

async function until(cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(20);
  }
}

describe('audit worker', () => {
  afterEach(() => vi.restoreAllMocks());

  it('has a build to run (npm run build)', () => {
    expect(existsSync(entry)).toBe(true);
  });

  it('writes byte for byte what the in-thread pipeline writes, system events in push order', async () => {
    const dir = tmpDir();
    vi.spyOn(Date, 'now').mockReturnValue(1_780_000_000_123);
    const write = async (_file: string, audit: AuditWorker | AuditPipeline): Promise<void> => {
      const r = new AuditRecorder(audit);
      for (let i = 0; i < 300; i++) {
        r.record(ctx(i), i % 7 === 0 ? 403 : 200, i / 7);
        if (i % 50 === 0) audit.recordSystem({ type: 'key.revoked', keyId: `k${i}` });
      }
      await audit.close();
    };
    const a = path.join(dir, 'in-thread.ndjson');
    const b = path.join(dir, 'worker.ndjson');
    await write(a, new AuditPipeline(planFor(dir, [fileSink(a)]), { instance: 'same' }));
    await write(b, new AuditWorker(planFor(dir, [fileSink(b)]), { instance: 'same', entry }));
    expect(lines(b)).toHaveLength(306);
    expect(readFileSync(b, 'utf8')).toBe(readFileSync(a, 'utf8'));
    expect(readFileSync(b, 'utf8')).not.toContain('t0&');
  });

  it('delivers every event in order across many batches, and close() flushes the last ones', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    const w = new AuditWorker(planFor(dir, [fileSink(file)]), { instance: 'order', entry });
    const r = new AuditRecorder(w);
    let i = 0;
    for (let round = 0; round < 20; round++) {
      for (let k = 0; k < 250; k++) r.record(ctx(i++), 200, 1);
      await sleep(round % 4 === 0 ? 0 : 7); // some batches cut by the timer, some by size
    }
    for (let k = 0; k < 5000; k++) r.record(ctx(i++), 200, 1); // more than one batch without yielding
    r.record(ctx(i++), 200, 1);
    await w.close(); // no wait: the last event is still in the main thread's batch
    const events = lines(file).map((l) => JSON.parse(l) as { id: string; request: { id: string }; chain: { seq: number } });
    expect(events.map((e) => e.request.id)).toEqual(Array.from({ length: i }, (_, k) => `req-${k}`));
    expect(events.map((e) => e.chain.seq)).toEqual(Array.from({ length: i }, (_, k) => k));
    expect(new Set(events.map((e) => e.id)).size).toBe(i);
    expect(verifyFiles([file]).ok).toBe(true);
  });

  it('continues the chain of an existing file after a restart', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    for (let run = 0; run < 2; run++) {
      const w = new AuditWorker(planFor(dir, [fileSink(file)]), { instance: 'restart', entry });
      const r = new AuditRecorder(w);
      for (let k = 0; k < 10; k++) r.record(ctx(k), 200, 1);
      await w.close();
    }
    expect(lines(file)).toHaveLength(20);
    expect(verifyFiles([file])).toMatchObject({ ok: true, events: 20 });
  });

  it('spools while a sink is down, reports failed/recovered on the bus, forwards metrics, and replays in order', async () => {
    const rx = new Receiver('wk-secret');
    await rx.start();
    await rx.stop(); // keep the port, start down
    const dir = tmpDir();
    const bus = new EventBus();
    const seen: SystemEvent[] = [];
    bus.subscribe((e) => void seen.push(e));
    const sink: SinkConfig = { kind: 'webhook', name: 'wk-hook', url: rx.url, secret: 'wk-secret', batch: 100 };
    const w = new AuditWorker(planFor(dir, [sink]), { instance: 'spool', entry, bus, retryMs: 50 });
    const r = new AuditRecorder(w);
    for (let k = 0; k < 500; k++) r.record(ctx(k), 200, 1);
    await until(() => seen.some((e) => e.type === 'sink.failed'), 10_000);
    const spooled = async () => (await auditSpooledEvents.get()).values.find((v) => v.labels.sink === 'wk-hook')?.value ?? 0;
    const deadline = Date.now() + 10_000;
    while ((await spooled()) < 500 && Date.now() < deadline) await sleep(50);
    expect(await spooled()).toBeGreaterThanOrEqual(500);
    await rx.start();
    await until(() => seen.some((e) => e.type === 'sink.recovered'), 10_000);
    await until(() => rx.lines.filter((l) => l.includes('"type":"request"')).length >= 500, 10_000);
    await w.close();
    expect(rx.badSignatures).toBe(0);
    const events = rx.lines.map((l) => JSON.parse(l) as { type: string; request: { id: string } | null; chain: { seq: number } });
    const requests = events.filter((e) => e.type === 'request').map((e) => e.request!.id);
    expect(requests).toEqual(Array.from({ length: 500 }, (_, k) => `req-${k}`));
    // The failure event itself went through the chain after the requests that were waiting.
    expect(events.some((e) => e.type === 'sink.failed')).toBe(true);
    const seqs = events.map((e) => e.chain.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    const written = (await auditEventsTotal.get()).values.find((v) => v.labels.sink === 'wk-hook' && v.labels.result === 'written');
    expect(written?.value).toBeGreaterThanOrEqual(500);
    expect(await spooled()).toBe(0);
  }, 40_000);

  it('falls back to writing in the main thread when the worker dies', async () => {
    const dir = tmpDir();
    const broken = path.join(dir, 'broken-worker.mjs');
    writeFileSync(broken, 'throw new Error("worker bug");\n');
    const file = path.join(dir, 'audit.ndjson');
    const errors: unknown[] = [];
    const logger = { error: (o: unknown) => void errors.push(o), warn: () => undefined, info: () => undefined } as unknown as Logger;
    const w = new AuditWorker(planFor(dir, [fileSink(file)]), { instance: 'fallback', entry: pathToFileURL(broken), logger });
    await until(() => errors.length >= 2, 5000); // 'error', then 'exit'
    const r = new AuditRecorder(w);
    for (let k = 0; k < 10; k++) r.record(ctx(k), 200, 1);
    await w.close();
    expect(lines(file)).toHaveLength(10);
    expect(verifyFiles([file]).ok).toBe(true);
  });
});
