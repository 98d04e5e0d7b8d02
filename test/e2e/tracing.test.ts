// OpenTelemetry traces through the built CLI, configured only by the standard OTEL_* variables,
// exported to a fake OTLP collector on loopback: the span tree and its ids (the upstream span is
// the one the forwarded traceparent names), the attributes, no credential in any payload, the
// samplers (ratio 0, parent-based honouring the caller's flag), a collector that is down, and
// nothing of OpenTelemetry loaded when no endpoint is set.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:http2';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../src/authn/api-key.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';
import { type CollectedSpan, type Collector, startCollector } from '../helpers/otlp-collector.js';
import { freePort } from '../helpers/ports.js';
import { redisUrl } from '../helpers/redis.js';

const API_KEY = 'sk-trace-secret-0a1b2c3d';
const JWT = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ0cmFjZS1zdWJqZWN0In0.c2lnbmF0dXJlLXNlY3JldA';
const QUERY_SECRET = 'query-secret-9f8e7d';
const CALLER_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const CALLER_SPAN = '00f067aa0ba902b7';

let dir: string;
let upstream: Server;
/** The traceparent each upstream request arrived with, by path. */
const forwarded = new Map<string, string>();
const running: Serving[] = [];
const collectors: Collector[] = [];
let policy: string;
let probeImport: string;

beforeAll(async () => {
  requireBuiltCli();
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-tracing-'));
  upstream = createServer((req, res) => {
    forwarded.set(new URL(req.url ?? '/', 'http://x').pathname, String(req.headers.traceparent ?? ''));
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  policy = path.join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
store: { url: "${redisUrl()}", prefix: "e2e:tracing:${Date.now().toString(36)}:" }
authentication:
  apiKeys:
    keys:
      - { id: trace-key, hash: "${hashApiKey(API_KEY)}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { standard: { rate: 100/s, burst: 100 } }
  default: standard
routes:
  - { name: keyed, match: { path: "/keyed/**" }, require: ["api:use"] }
  - { name: open, match: { path: "/open/**" }, public: true }
`,
  );
  // A module hook that writes down every @opentelemetry module any thread of the process resolves.
  writeFileSync(
    path.join(dir, 'hooks.mjs'),
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  if (r.url.includes('@opentelemetry')) appendFileSync(process.env.PCS_OTEL_PROBE, r.url + '\\n');
  return r;
}
`,
  );
  writeFileSync(path.join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(path.join(dir, 'hooks.mjs')).href)});\n`);
  probeImport = `--import=${pathToFileURL(path.join(dir, 'register.mjs')).href}`;
});

afterAll(async () => {
  for (const s of running) await s.stop();
  for (const c of collectors) await c.close();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

const OTEL_UNSET = [
  'OTEL_EXPORTER_OTLP_ENDPOINT',
  'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT',
  'OTEL_EXPORTER_OTLP_PROTOCOL',
  'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL',
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_SERVICE_NAME',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_SDK_DISABLED',
  'OTEL_TRACES_EXPORTER',
];

async function serve(env: Record<string, string>): Promise<Serving> {
  const s = await serveCli(
    policy,
    { OTEL_BSP_SCHEDULE_DELAY: '100', ...env },
    OTEL_UNSET.filter((n) => !(n in env)),
  );
  running.push(s);
  return s;
}

/** SIGTERM and wait for the exit: the shutdown exports every span still queued. */
async function stopGracefully(s: Serving): Promise<void> {
  if (s.child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    s.child.once('exit', () => resolve());
    s.child.kill('SIGTERM');
  });
}

async function until<T>(what: string, f: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const byTrace = (spans: CollectedSpan[], traceId: string): CollectedSpan[] => spans.filter((s) => s.traceId === traceId);
const traceIdOf = (traceparent: string): string => traceparent.slice(3, 35);
const spanIdOf = (traceparent: string): string => traceparent.slice(36, 52);

describe('tracing with OTLP over HTTP/JSON and the default sampler (parentbased_always_on)', () => {
  let collector: Collector;
  let gw: Serving;

  beforeAll(async () => {
    collector = await startCollector();
    collectors.push(collector);
    gw = await serve({
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
      OTEL_SERVICE_NAME: 'edge-gateway',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=test,team=platform',
      OTEL_EXPORTER_OTLP_HEADERS: 'x-collector-token=tok-123',
      PCS_OTEL_PROBE: path.join(dir, 'probe-on.txt'),
      NODE_OPTIONS: probeImport,
    });
  });

  it('exports a server span under the caller span, with children for authentication, authorization, limits and the upstream the forwarded traceparent names', async () => {
    const res = await fetch(`${gw.proxy}/keyed/orders?token=${QUERY_SECRET}&x=1`, {
      headers: { 'x-api-key': API_KEY, traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` },
    });
    expect(res.status).toBe(200);
    const sent = forwarded.get('/keyed/orders')!;
    expect(traceIdOf(sent)).toBe(CALLER_TRACE);
    expect(sent.endsWith('-01')).toBe(true);

    const spans = await until('the keyed trace', () => {
      const t = byTrace(collector.spans(), CALLER_TRACE);
      return t.length >= 5 ? t : undefined;
    });
    expect(collector.exports.every((e) => e.path === '/v1/traces' && e.contentType.includes('json'))).toBe(true);
    expect(collector.exports[0]?.headers['x-collector-token']).toBe('tok-123');
    const server = spans.find((s) => s.kind === 2)!;
    expect(server.name).toBe('GET keyed');
    expect(server.parentSpanId).toBe(CALLER_SPAN);
    expect(server.attributes).toEqual({
      'http.request.method': 'GET',
      'http.route': 'keyed',
      'url.path': '/keyed/orders',
      'http.response.status_code': 200,
      'client.address': '127.0.0.1',
      'portcullis.code': 'OK',
      'portcullis.tenant': 'acme',
    });
    const children = spans.filter((s) => s !== server);
    expect(children.map((s) => s.name).sort()).toEqual(['authentication', 'authorization', 'limits', 'upstream']);
    for (const c of children) expect(c.parentSpanId, c.name).toBe(server.spanId);
    const up = children.find((s) => s.name === 'upstream')!;
    expect(up.kind).toBe(3);
    expect(up.spanId).toBe(spanIdOf(sent));
    expect(new Set(spans.map((s) => s.spanId)).size).toBe(spans.length);
    expect(server.resource['service.name']).toBe('edge-gateway');
    expect(server.resource['deployment.environment']).toBe('test');
    expect(server.resource.team).toBe('platform');
  });

  it('starts a new trace for a request without traceparent: the server span is the root', async () => {
    expect((await fetch(`${gw.proxy}/open/fresh`)).status).toBe(200);
    const sent = forwarded.get('/open/fresh')!;
    const spans = await until('the fresh trace', () => {
      const t = byTrace(collector.spans(), traceIdOf(sent));
      return t.length >= 2 ? t : undefined;
    });
    const server = spans.find((s) => s.kind === 2)!;
    expect(server.parentSpanId).toBe('');
    expect(server.attributes['http.route']).toBe('open');
    expect(server.attributes['portcullis.tenant']).toBeUndefined();
    expect(spans.find((s) => s.name === 'upstream')?.spanId).toBe(spanIdOf(sent));
  });

  it('records a denial on the server span with its reason code, and no upstream span', async () => {
    const trace = 'aaaabbbbccccddddeeeeffff00001111';
    const res = await fetch(`${gw.proxy}/keyed/denied`, { headers: { 'x-api-key': 'sk-wrong-key', traceparent: `00-${trace}-${CALLER_SPAN}-01` } });
    expect(res.status).toBe(401);
    const spans = await until('the denied trace', () => {
      const t = byTrace(collector.spans(), trace);
      return t.length >= 2 ? t : undefined;
    });
    const server = spans.find((s) => s.kind === 2)!;
    expect(server.attributes['http.response.status_code']).toBe(401);
    expect(String(server.attributes['portcullis.code'])).toMatch(/^AUTH_/);
    expect(spans.map((s) => s.name)).not.toContain('upstream');
    expect(spans.map((s) => s.name)).toContain('authentication');
  });

  it("honours a caller's sampled=0 (parent-based): the flag is forwarded and nothing is exported", async () => {
    const trace = '0123456789abcdef0123456789abcdef';
    expect((await fetch(`${gw.proxy}/open/unsampled`, { headers: { traceparent: `00-${trace}-${CALLER_SPAN}-00` } })).status).toBe(200);
    const sent = forwarded.get('/open/unsampled')!;
    expect(traceIdOf(sent)).toBe(trace);
    expect(sent.endsWith('-00')).toBe(true);
    // A sampled request after it is exported: once it is there, the unsampled one would have been too.
    expect((await fetch(`${gw.proxy}/open/after`)).status).toBe(200);
    const after = traceIdOf(forwarded.get('/open/after')!);
    await until('the request after', () => (byTrace(collector.spans(), after).length > 0 ? true : undefined));
    expect(byTrace(collector.spans(), trace)).toEqual([]);
  });

  it('never puts a credential in a span: no API key, JWT, cookie or query string in any payload', async () => {
    expect((await fetch(`${gw.proxy}/open/creds?api_key=${QUERY_SECRET}`, { headers: { authorization: `Bearer ${JWT}`, cookie: `session=${QUERY_SECRET}` } })).status).toBe(200);
    const t = traceIdOf(forwarded.get('/open/creds')!);
    await until('the credentials trace', () => (byTrace(collector.spans(), t).length > 0 ? true : undefined));
    const all = collector.exports.map((e) => e.body.toString('utf8')).join('\n');
    expect(all).toContain('/keyed/orders');
    for (const secret of [API_KEY, JWT, QUERY_SECRET, 'token=', 'api_key=', 'Bearer']) expect(all).not.toContain(secret);
  });

  it('loads the OpenTelemetry modules (in the trace worker) when an endpoint is set', () => {
    const probe = path.join(dir, 'probe-on.txt');
    expect(existsSync(probe)).toBe(true);
    expect(readFileSync(probe, 'utf8')).toContain('@opentelemetry/exporter-trace-otlp-http');
  });
});

describe('tracing with OTLP over HTTP/protobuf and parentbased_traceidratio at 0', () => {
  let collector: Collector;
  let gw: Serving;

  beforeAll(async () => {
    collector = await startCollector();
    collectors.push(collector);
    gw = await serve({
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `${collector.url}/custom/traces`,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0',
      // Nothing leaves before the shutdown, which must flush what is queued.
      OTEL_BSP_SCHEDULE_DELAY: '600000',
    });
  });

  it('samples no new trace at ratio 0 (flag 00 forwarded), yet follows a sampled caller; the queue is flushed at shutdown and the protobuf payload decodes to the same tree', async () => {
    for (let i = 0; i < 5; i++) expect((await fetch(`${gw.proxy}/open/ratio-${i}`)).status).toBe(200);
    const unsampled = [0, 1, 2, 3, 4].map((i) => forwarded.get(`/open/ratio-${i}`)!);
    for (const tp of unsampled) expect(tp.endsWith('-00')).toBe(true);
    const res = await fetch(`${gw.proxy}/keyed/pb?secret=${QUERY_SECRET}`, { headers: { 'x-api-key': API_KEY, traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } });
    expect(res.status).toBe(200);
    const sent = forwarded.get('/keyed/pb')!;
    expect(sent.endsWith('-01')).toBe(true);
    await new Promise((r) => setTimeout(r, 300));
    expect(collector.exports).toEqual([]);
    await stopGracefully(gw);
    const spans = collector.spans();
    expect(collector.exports.length).toBeGreaterThan(0);
    expect(collector.exports.every((e) => e.path === '/custom/traces' && e.contentType === 'application/x-protobuf')).toBe(true);
    // Only the caller-sampled request: not one span of the five ratio-0 traces.
    expect(new Set(spans.map((s) => s.traceId))).toEqual(new Set([CALLER_TRACE]));
    const server = spans.find((s) => s.kind === 2)!;
    expect(server.parentSpanId).toBe(CALLER_SPAN);
    expect(server.attributes['url.path']).toBe('/keyed/pb');
    expect(server.attributes['http.response.status_code']).toBe(200);
    expect(server.attributes['portcullis.tenant']).toBe('acme');
    expect(server.resource['service.name']).toBe('portcullis');
    expect(spans.find((s) => s.name === 'upstream')?.spanId).toBe(spanIdOf(sent));
    expect(spans.filter((s) => s !== server).every((s) => s.parentSpanId === server.spanId)).toBe(true);
    const raw = Buffer.concat(collector.exports.map((e) => e.body)).toString('latin1');
    for (const secret of [API_KEY, QUERY_SECRET]) expect(raw).not.toContain(secret);
  });
});

describe('tracing with audit on', () => {
  it('records the audit event and exports the span of the same request', async () => {
    const collector = await startCollector();
    collectors.push(collector);
    const auditFile = path.join(dir, 'audit.ndjson');
    const audited = path.join(dir, 'audited.yaml');
    writeFileSync(audited, `${readFileSync(policy, 'utf8')}audit:\n  sinks:\n    - file: { path: ${JSON.stringify(auditFile)} }\n`);
    const gw = await serveCli(audited, { OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_BSP_SCHEDULE_DELAY: '100' }, OTEL_UNSET.slice(1));
    running.push(gw);
    const res = await fetch(`${gw.proxy}/keyed/audited`, { headers: { 'x-api-key': API_KEY } });
    expect(res.status).toBe(200);
    const requestId = res.headers.get('x-request-id')!;
    const t = traceIdOf(forwarded.get('/keyed/audited')!);
    await stopGracefully(gw);
    expect(byTrace(collector.spans(), t).map((s) => s.name)).toContain('GET keyed');
    expect(readFileSync(auditFile, 'utf8')).toContain(requestId);
  }, 60_000);
});

describe('tracing when the collector is down', () => {
  it('answers every request as usual, counts the failed exports and still shuts down cleanly', async () => {
    const closedPort = await freePort();
    const gw = await serve({ OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${closedPort}`, OTEL_EXPORTER_OTLP_TIMEOUT: '2000' });
    const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => fetch(`${gw.proxy}/open/down-${i}`).then((r) => r.status)));
    expect(statuses).toEqual(Array(20).fill(200));
    const end = Date.now() + 45_000;
    let text = '';
    while (Date.now() < end) {
      text = await (await fetch(`${gw.admin}/metrics`)).text();
      if (/portcullis_traces_total\{result="failed"\} [1-9]/.test(text)) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(text).toMatch(/portcullis_traces_total\{result="failed"\} [1-9]/);
    expect((await fetch(`${gw.proxy}/open/still`)).status).toBe(200);
    // Shutting down with spans the collector never took still ends, cleanly.
    await stopGracefully(gw);
    expect(gw.child.exitCode).toBe(0);
  }, 60_000);
});

describe('tracing unset', () => {
  it('loads no OpenTelemetry module and forwards the traceparent as before', async () => {
    const probe = path.join(dir, 'probe-off.txt');
    const gw = await serve({ PCS_OTEL_PROBE: probe, NODE_OPTIONS: probeImport });
    expect((await fetch(`${gw.proxy}/open/plain`, { headers: { traceparent: `00-${CALLER_TRACE}-${CALLER_SPAN}-01` } })).status).toBe(200);
    const sent = forwarded.get('/open/plain')!;
    expect(traceIdOf(sent)).toBe(CALLER_TRACE);
    expect(spanIdOf(sent)).not.toBe(CALLER_SPAN);
    expect(await (await fetch(`${gw.admin}/metrics`)).text()).not.toMatch(/portcullis_traces_total\{/);
    await stopGracefully(gw);
    expect(existsSync(probe)).toBe(false);
  }, 60_000);
});

describe('tracing misconfigured', () => {
  it('refuses to start on an OTEL_* value it cannot honour, naming it', async () => {
    const port = await freePort();
    const ran = await runCli(['serve', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', 'off'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318',
      OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
      OTEL_TRACES_SAMPLER_ARG: 'half',
    });
    expect(ran.code).toBe(1);
    expect(ran.stderr).toContain('OTEL_TRACES_SAMPLER_ARG="half" is not a probability between 0 and 1');
  });
});

describe('tracing an HTTP/2 request (--h2c)', () => {
  it('exports the upstream span of an h2c request, the one the forwarded traceparent names', async () => {
    const collector = await startCollector();
    collectors.push(collector);
    const gw = await serve({ OTEL_EXPORTER_OTLP_ENDPOINT: collector.url, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', PORTCULLIS_H2C: '1' });
    const trace = '5cf92f3577b34da6a3ce929d0e0e4799';
    const session = connect(gw.proxy);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/open/h2', traceparent: `00-${trace}-${CALLER_SPAN}-01` });
        let code = 0;
        req.on('response', (h) => (code = Number(h[':status'])));
        req.on('end', () => resolve(code));
        req.on('error', reject);
        req.resume();
        req.end();
      });
      expect(status).toBe(200);
    } finally {
      session.close();
    }
    const sent = forwarded.get('/open/h2')!;
    expect(traceIdOf(sent)).toBe(trace);
    const up = await until('the upstream span of the h2c request', () => byTrace(collector.spans(), trace).find((s) => s.name === 'upstream'));
    expect(up.spanId).toBe(spanIdOf(sent));
    const server = byTrace(collector.spans(), trace).find((s) => s.kind === 2)!;
    expect(up.parentSpanId).toBe(server.spanId);
  });
});
