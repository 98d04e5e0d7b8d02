// A webhook outage under sustained load: the audit worker (the built dist/audit/worker.js, as the
// server runs it) is fed events faster than the proxy can serve requests on this machine while a
// real receiver answers 503, then the receiver comes back. The spool must drain while new events
// keep arriving, lose nothing, and report its age. The main thread drives the worker directly:
// that measures the replay itself rather than the proxy's request rate.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { SinkConfig } from '../../../src/audit/compile.js';
import { REQUEST_RECORD_FIELDS } from '../../../src/audit/event.js';
import { AuditWorker } from '../../../src/audit/offthread.js';
import { REQUEST, type WireValue } from '../../../src/audit/wire.js';
import { auditBacklogAge, auditBacklogEvents } from '../../../src/observability/metrics.js';
import { planFor, tmpDir } from '../../helpers/audit.js';
import { Receiver } from './receiver.js';

const entry = new URL('../../../dist/audit/worker.js', import.meta.url);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The proxy's full rate on this 2-core machine (bench: 5,700-6,300 req/s), above the old replay rate. */
const RATE = 6000;
const OUTAGE_MS = 10_000;
/**
 * From the receiver's return: up to 5 s of retry backoff, then the catch-up itself (about 2 s on a
 * quiet machine). Generous for a loaded one: a replay slower than the arrival rate never drains.
 */
const DRAIN_BOUND_MS = 30_000;

const gauge = async (g: typeof auditBacklogAge, sink: string): Promise<number> => (await g.get()).values.find((v) => v.labels.sink === sink)?.value ?? 0;

describe('audit backlog under load', () => {
  const rx = new Receiver('bk-secret');
  afterAll(() => rx.stop());

  it(`drains a ${OUTAGE_MS / 1000} s webhook backlog while ${RATE} events/s keep arriving, losing and duplicating nothing`, async () => {
    await rx.start();
    const dir = tmpDir();
    const sink: SinkConfig = { kind: 'webhook', name: 'webhook', url: rx.url, secret: 'bk-secret', batch: 500 };
    const w = new AuditWorker({ ...planFor(dir, [sink]), spoolDir: path.join(dir, 'spool') }, { instance: 'backlog', entry });
    let generated = 0;
    const t0 = Date.now();
    // Paced by the clock, so a slow tick catches up instead of lowering the rate.
    const load = setInterval(() => {
      const want = Math.floor(((Date.now() - t0) * RATE) / 1000);
      for (; generated < want; generated++) {
        w.take().push(REQUEST, ...requestRecord(generated));
      }
    }, 5);
    try {
      await sleep(500);
      rx.mode = '503';
      await sleep(OUTAGE_MS);
      const age = await gauge(auditBacklogAge, 'webhook');
      const backlog = await gauge(auditBacklogEvents, 'webhook');
      // The worker reports every 250 ms; the oldest event waits since the outage began.
      expect(age).toBeGreaterThan(OUTAGE_MS / 1000 / 2);
      expect(backlog).toBeGreaterThan((RATE * OUTAGE_MS) / 1000 / 2);
      rx.mode = 'ok';
      const back = Date.now();
      const seen = new Set<string>();
      let scanned = 0;
      const delivered = (): number => {
        for (; scanned < rx.lines.length; scanned++) seen.add(idOf(rx.lines[scanned]!));
        return seen.size;
      };
      const deliveredAtReturn = delivered();
      let drainedAfter: number | undefined;
      let lag = 0;
      while (Date.now() - back < DRAIN_BOUND_MS) {
        await sleep(250);
        const unique = delivered();
        lag = generated - unique;
        // Caught up: what waits is no more than the events of the last second.
        if (lag < RATE && (await gauge(auditBacklogAge, 'webhook')) < 2) {
          drainedAfter = Date.now() - back;
          const replayed = unique - deliveredAtReturn;
          console.log(`backlog of ${Math.round(backlog)} events drained ${drainedAfter} ms after the receiver returned, ${replayed} events delivered meanwhile while ${RATE}/s kept arriving`);
          break;
        }
      }
      expect(drainedAfter, `the backlog never drained: ${lag} events still waiting after ${DRAIN_BOUND_MS} ms`).toBeDefined();
    } finally {
      clearInterval(load);
      await w.close(15_000);
    }
    expect(rx.badSignatures).toBe(0);
    const requests = rx.lines.filter((l) => l.includes('"type":"request"'));
    const ids = requests.map((l) => (JSON.parse(l) as { request: { id: string } }).request.id);
    // Nothing lost; and a 503 stores nothing, so nothing here is delivered twice either (duplicates
    // happen only when a receiver stored a batch whose answer never arrived, or after a crash).
    expect(new Set(ids).size).toBe(generated);
    expect(ids.length).toBe(generated);
    expect(await gauge(auditBacklogAge, 'webhook')).toBe(0);
    // Per-instance chain order survives the replay.
    const seqs = rx.lines.map((l) => (JSON.parse(l) as { chain: { seq: number } }).chain.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  }, 90_000);
});

function idOf(line: string): string {
  const at = line.indexOf('"id":"');
  return line.slice(at + 6, line.indexOf('"', at + 6));
}

/** A request record as the recorder writes it, in the order of the one field table (unset fields null). */
function requestRecord(n: number): WireValue[] {
  const values: Partial<Record<(typeof REQUEST_RECORD_FIELDS)[number], WireValue>> = {
    time: Date.now(),
    requestId: `req-${n}`,
    method: 'GET',
    path: `/v1/reports/${n}`,
    route: 'reports',
    ip: '10.0.0.1',
    subject: 's',
    tenant: 'acme',
    keyId: 'k',
    via: 'apiKey',
    allowed: true,
    status: 200,
    durationMs: 1,
  };
  return REQUEST_RECORD_FIELDS.map((f) => values[f] ?? null);
}
