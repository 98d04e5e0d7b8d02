// A fault inside the gateway (a stage or a callback that throws) is contained to its request: the
// client gets 500 GATEWAY_ERROR problem+json, the fault is counted, the audit event says it was not
// allowed, and the server goes on serving. The server is assembled in-process, as app.ts does,
// with each stage wrapped so that a request header can make it throw or reject.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { AuditRecorder } from '../../../src/audit/recorder.js';
import type { AuditSink } from '../../../src/audit/sink.js';
import type { RequestContext } from '../../../src/core/context.js';
import type { Stage } from '../../../src/core/stage.js';
import { openPolicy, type PlanManager } from '../../../src/engine/compile.js';
import { Engine } from '../../../src/engine/engine.js';
import { createStages } from '../../../src/engine/stages.js';
import { EventBus } from '../../../src/events.js';
import { MemoryStore } from '../../../src/limits/memory-store.js';
import { createLogger } from '../../../src/observability/logger.js';
import { registry } from '../../../src/observability/metrics.js';
import { createBreakerStage } from '../../../src/proxy/breaker.stage.js';
import { ProxyServer } from '../../../src/proxy/server.js';
import { firstHeader } from '../../../src/request-headers.js';
import { Balancers } from '../../../src/upstream/balancer.js';

const lines: string[] = [];
const memorySink: AuditSink = {
  name: 'memory',
  write: async (batch) => void lines.push(...batch),
  close: async () => undefined,
};

let upstream: Server;
let upstreamRequests = 0;
let policy: PlanManager;
let audit: AuditPipeline;
let proxy: ProxyServer;
let base: string;
const stageNames: string[] = [];

/** Each stage, wrapped: `x-fault: <stage>:sync` makes it throw, `<stage>:async` makes it reject. */
function faulty<C extends RequestContext>(stages: readonly Stage<C>[]): Stage<C>[] {
  return stages.map((s) => ({
    name: s.name,
    run(ctx: C) {
      const f = firstHeader(ctx.rawHeaders, 'x-fault');
      if (f === `${s.name}:sync`) throw new Error(`injected fault in ${s.name}`);
      if (f === `${s.name}:async`) return Promise.reject(new Error(`injected fault in ${s.name}`));
      if (f === `${s.name}:bad-header` && s === stages[stages.length - 1]) {
        // A value Node refuses to write: the forwarder's onHeaders throws while relaying the answer.
        ctx.limits = { headers: { 'x-broken': 'a\nb' }, release: undefined, degraded: false };
      }
      return s.run(ctx);
    },
  }));
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    upstreamRequests++;
    req.resume();
    req.on('end', () => setTimeout(() => res.end('ok'), req.url?.startsWith('/slow') ? 500 : 0));
  });
  upstream.on('upgrade', (_req, socket) => socket.end('HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-faults-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  sinks: [{ stdout: {} }]
`,
  );
  const logger = createLogger({ level: process.env.TEST_LOG ?? 'silent' });
  const bus = new EventBus();
  policy = await openPolicy(dir, { watch: false, logger, bus });
  audit = new AuditPipeline(policy.plan.audit!, { logger, sinks: [memorySink] });
  const stages = faulty(createStages({ logger, store: { store: new MemoryStore() } }));
  const admit = faulty([createBreakerStage(new Balancers({ logger }))]);
  stageNames.push(...stages.map((s) => s.name), ...admit.map((s) => s.name));
  proxy = new ProxyServer({ policy, engine: new Engine(stages), admit, logger, recorder: new AuditRecorder(audit) });
  base = await proxy.listen('127.0.0.1', 0);
});

afterAll(async () => {
  await proxy?.shutdown(0);
  await audit?.close();
  await policy?.close();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

async function faults(where: string): Promise<number> {
  const m = (await registry.getSingleMetric('portcullis_gateway_faults_total')!.get()).values.find((v) => v.labels.where === where);
  return m?.value ?? 0;
}

async function eventFor(requestId: string): Promise<Record<string, any>> {
  const until = Date.now() + 5_000;
  for (;;) {
    audit.flush();
    const line = lines.find((l) => l.includes(`"id":"${requestId}"`));
    if (line !== undefined) return JSON.parse(line) as Record<string, any>;
    if (Date.now() > until) throw new Error(`no audit event for ${requestId}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('a fault inside the gateway', () => {
  it('wraps every stage of the pipeline (the list this test injects into is the real one)', () => {
    expect(stageNames).toEqual([...createStages({ store: { store: new MemoryStore() } }).map((s) => s.name), 'breaker']);
    expect(stageNames.length).toBeGreaterThanOrEqual(8);
  });

  for (const mode of ['sync', 'async'] as const) {
    it(`answers 500 GATEWAY_ERROR, counts it and audits it as not allowed, whichever stage ${mode === 'sync' ? 'throws' : 'rejects'}`, async () => {
      for (const stage of stageNames) {
        const before = await faults('request');
        const upstreamBefore = upstreamRequests;
        const res = await request(`${base}/x/${stage}`, { headers: { 'x-fault': `${stage}:${mode}` } });
        const body = (await res.body.json()) as Record<string, unknown>;
        expect(res.statusCode, stage).toBe(500);
        expect(res.headers['content-type']).toBe('application/problem+json');
        expect(body).toMatchObject({ code: 'GATEWAY_ERROR', status: 500, title: 'Internal Server Error', requestId: res.headers['x-request-id'] });
        expect(await faults('request')).toBe(before + 1);
        expect(upstreamRequests, `${stage}: nothing forwarded`).toBe(upstreamBefore);
        const event = await eventFor(res.headers['x-request-id'] as string);
        expect(event.decision).toMatchObject({ allowed: false, code: 'GATEWAY_ERROR' });
        expect(event.response.status).toBe(500);
        expect(event.severity).toBe('notice');
      }
      const ok = await request(`${base}/after`);
      expect(ok.statusCode).toBe(200);
      await ok.body.text();
    });
  }

  it("is a 500 GATEWAY_ERROR, not an upstream error, when relaying the upstream's answer throws", async () => {
    const before = await faults('forward');
    const last = stageNames[stageNames.length - 1]!;
    const res = await request(`${base}/relay`, { headers: { 'x-fault': `${last}:bad-header` } });
    expect(res.statusCode).toBe(500);
    expect(((await res.body.json()) as { code: string }).code).toBe('GATEWAY_ERROR');
    expect(await faults('forward')).toBe(before + 1);
    const event = await eventFor(res.headers['x-request-id'] as string);
    expect(event.decision).toMatchObject({ allowed: false, code: 'GATEWAY_ERROR' });
  });

  it('settles every pipelined request of a client that goes away: one audit event each, nothing left in flight', async () => {
    const { port } = new URL(base);
    const before = upstreamRequests;
    const s = connect(Number(port), '127.0.0.1', () => s.write('GET /slow/gone-1 HTTP/1.1\r\nHost: x\r\n\r\nGET /slow/gone-2 HTTP/1.1\r\nHost: x\r\n\r\n'));
    s.on('error', () => undefined);
    const until = Date.now() + 5_000;
    while (upstreamRequests < before + 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    s.destroy();
    const gone: Record<string, any>[] = [];
    while (gone.length < 2 && Date.now() < until + 5_000) {
      audit.flush();
      gone.splice(0, gone.length, ...lines.map((l) => JSON.parse(l) as Record<string, any>).filter((e) => e.request.path.startsWith('/slow/gone-')));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(gone.map((e) => e.request.path).sort()).toEqual(['/slow/gone-1', '/slow/gone-2']);
    for (const e of gone) expect(e.response.status).toBe(499);
    const inFlight = (await registry.getSingleMetric('portcullis_in_flight_requests')!.get()).values[0]!.value;
    expect(inFlight).toBe(0);
  });

  it('answers a WebSocket upgrade whose stage throws with 500 GATEWAY_ERROR and closes that connection', async () => {
    const { port } = new URL(base);
    const text = await new Promise<string>((resolve, reject) => {
      const s = connect(Number(port), '127.0.0.1', () => s.write('GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Fault: route:sync\r\n\r\n'));
      let out = '';
      s.on('data', (d) => (out += d.toString()));
      s.on('close', () => resolve(out));
      s.on('error', reject);
    });
    expect(text).toMatch(/^HTTP\/1\.1 500 /);
    expect(text).toContain('"code":"GATEWAY_ERROR"');
    const ok = await request(`${base}/after-upgrade`);
    expect(ok.statusCode).toBe(200);
    await ok.body.text();
  });
});
