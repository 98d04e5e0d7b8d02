import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type AuditPlan, SECRET_NAMES, type SinkConfig } from '../../../src/audit/compile.js';
import type { RequestRecord } from '../../../src/audit/event.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { freePort, PrivateRedis } from '../../helpers/redis.js';
import { Receiver } from './receiver.js';

// The issue asks for 10,000; on our shared 2-core machine this runs in a few seconds.
const WEBHOOK_EVENTS = 10_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'portcullis-delivery-'));
const plan = (sinks: SinkConfig[]): AuditPlan => ({ chain: true, sinks, spoolDir: path.join(tmp(), 'spool'), redact: SECRET_NAMES, fingerprint: 't' });
const rec = (i: number): RequestRecord => ({
  kind: 0,
  time: Date.now(),
  requestId: `req-${i}`,
  method: 'GET',
  path: `/v1/reports/${i}`,
  route: 'reports',
  ip: '10.0.0.1',
  subject: 's',
  tenant: 't',
  keyId: 'k',
  via: 'apiKey',
  allowed: true,
  code: null,
  permission: null,
  shadow: null,
  status: 200,
  durationMs: 1,
  door: null,
});

async function until(cond: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await sleep(50);
  }
}

interface Ev {
  id: string;
  type: string;
  request: { id: string } | null;
  chain: { seq: number; instance: string };
}

describe('audit delivery', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup) await c();
  });

  it(`delivers all ${WEBHOOK_EVENTS} request events, signed and in order, across a webhook outage`, async () => {
    const r = new Receiver('wh-secret');
    await r.start();
    cleanup.push(() => r.stop());
    const p = new AuditPipeline(plan([{ kind: 'webhook', name: 'webhook', url: r.url, secret: 'wh-secret', batch: 500 }]), { instance: 'wh', retryMs: 100, maxQueue: 2000 });
    let i = 0;
    const pushSome = (n: number) => {
      for (let k = 0; k < n; k++) p.push(rec(i++));
    };
    pushSome(2000);
    await sleep(200);
    await r.stop(); // down for ~3 s while events keep flowing
    const outage = Date.now();
    while (i < WEBHOOK_EVENTS - 2000) {
      pushSome(250);
      await sleep(Math.max(0, 3000 / 24));
    }
    expect(Date.now() - outage).toBeGreaterThanOrEqual(2500);
    expect(p.dispatchers[0]!.spooled).toBeGreaterThan(0);
    await r.start();
    pushSome(WEBHOOK_EVENTS - i);
    await until(() => r.lines.filter((l) => l.includes('"type":"request"')).length >= WEBHOOK_EVENTS, 30_000);
    await p.close();

    expect(r.badSignatures).toBe(0);
    const seen = new Map<string, Ev>();
    for (const l of r.lines) {
      const e = JSON.parse(l) as Ev;
      if (!seen.has(e.id)) seen.set(e.id, e);
    }
    const events = [...seen.values()];
    const requests = events.filter((e) => e.type === 'request');
    expect(new Set(requests.map((e) => e.request!.id)).size).toBe(WEBHOOK_EVENTS);
    // Per-instance order: after de-duplication, arrival order is chain order.
    const seqs = events.map((e) => e.chain.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(events.some((e) => e.type === 'sink.failed')).toBe(true);
    expect(events.some((e) => e.type === 'sink.recovered')).toBe(true);
  }, 60_000);

  it('loses no event when Redis is killed and restarted under load', async () => {
    const redis = await PrivateRedis.start();
    cleanup.push(() => redis.kill());
    const key = 'portcullis:audit:test';
    const p = new AuditPipeline(plan([{ kind: 'redisStream', name: 'redisStream', url: redis.url, key, maxLen: 1_000_000 }]), { instance: 'rs', retryMs: 50 });
    const reader = () => new Redis(redis.url, { maxRetriesPerRequest: 1 });
    const ids = async (): Promise<Set<string>> => {
      const c = reader();
      try {
        return new Set((await c.xrange(key, '-', '+')).map(([, f]) => f[f.indexOf('id') + 1]!));
      } finally {
        c.disconnect();
      }
    };
    const pushed: string[] = [];
    let i = 0;
    const load = setInterval(() => {
      for (let k = 0; k < 20; k++) {
        pushed.push(`req-${i}`);
        p.push(rec(i++));
      }
    }, 5);
    await sleep(500);
    p.flush();
    await until(() => p.dispatchers[0]!.queued === 0, 5000);
    // redis-server here runs without persistence: what it held is gone with it, so keep a copy.
    const beforeKill = await ids();
    await redis.kill();
    const killedAt = i;
    await sleep(1000);
    expect(p.dispatchers[0]!.spooled).toBeGreaterThan(0);
    await redis.start();
    await sleep(500);
    clearInterval(load);
    await p.close(15_000);
    const after = await ids();
    const c = reader();
    const delivered = new Set<string>();
    for (const [, f] of await c.xrange(key, '-', '+')) {
      const e = JSON.parse(f[f.indexOf('event') + 1]!) as Ev;
      if (e.request) delivered.add(e.request.id);
    }
    c.disconnect();
    expect(after.size).toBeGreaterThan(0);
    expect(beforeKill.size).toBeGreaterThan(0);
    // Every event the pipeline accepted after the kill is in the restarted stream.
    const lostAfterKill = pushed.filter((id) => !delivered.has(id) && Number(id.slice(4)) >= killedAt);
    expect(lostAfterKill).toEqual([]);
    expect(pushed.length - killedAt).toBeGreaterThan(1000);
  }, 60_000);

  it('delivers, after a restart, every event the spool had accepted before kill -9', async () => {
    const child = fileURLToPath(new URL('../../fixtures/audit/spool-child.mjs', import.meta.url));
    const spoolDir = tmp();
    const port = await freePort();
    const url = `http://127.0.0.1:${port}/ingest`;
    const count = 2000;
    const writer = spawn(process.execPath, [child, 'write', spoolDir, url, String(count)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    writer.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await until(() => out.includes('SPOOLED'), 20_000);
    await sleep(100);
    writer.kill('SIGKILL');
    await new Promise((r) => writer.once('exit', r));

    const r = new Receiver('kill-secret');
    r.port = port;
    await r.start();
    cleanup.push(() => r.stop());
    const replay = spawn(process.execPath, [child, 'replay', spoolDir, url, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let rout = '';
    replay.stdout.on('data', (d: Buffer) => (rout += d.toString()));
    const code = await new Promise((res) => replay.once('exit', res));
    expect(rout).toContain('REPLAYED');
    expect(code).toBe(0);
    const got = new Set(r.lines.map((l) => (JSON.parse(l) as Ev).request?.id));
    const missing = Array.from({ length: count }, (_, k) => `req-${k}`).filter((id) => !got.has(id));
    expect(missing).toEqual([]);
    expect(r.badSignatures).toBe(0);
  }, 60_000);
});
