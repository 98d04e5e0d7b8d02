// gRPC through the gateway with @grpc/grpc-js on both sides: the client speaks h2c to the gateway,
// the gateway speaks h2c to a real grpc-js server (upstreams.<name>.protocol: h2c). Unary, server
// streaming and bidi calls pass with their trailers; every refusal is gRPC-shaped (HTTP 200,
// trailers-only grpc-status, grpc-message naming the reason code) and audited with that code.

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type Client,
  credentials,
  type GrpcObject,
  loadPackageDefinition,
  Metadata,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceClientConstructor,
  type ServiceError,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { inFlight } from '../../../src/observability/metrics.js';
import { freePort, redisUrl } from '../../helpers/redis.js';

const PROTO = `syntax = "proto3";
package demo;
message Req { string name = 1; int32 count = 2; int32 delayMs = 3; }
message Res { string text = 1; }
service Greeter {
  rpc Hello (Req) returns (Res);
  rpc Count (Req) returns (stream Res);
  rpc Chat (stream Req) returns (stream Res);
  rpc Fail (Req) returns (Res);
  rpc Slow (Req) returns (Res);
}
service Secure { rpc Hello (Req) returns (Res); }
service Limited { rpc Hello (Req) returns (Res); }
service Down { rpc Hello (Req) returns (Res); }
service Nope { rpc Hello (Req) returns (Res); }
`;

type Req = { name?: string; count?: number; delayMs?: number };
type Res = { text: string };
type Unary = (req: Req, md: Metadata, opts: { deadline?: number }, cb: (err: ServiceError | null, res?: Res) => void) => unknown;

let app: App;
let upstream: Server;
let dir: string;
let auditFile: string;
let proto: GrpcObject;
const clients: Client[] = [];
let slowCancelled = false;
const run = Date.now().toString(36);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pcs-grpc-'));
  writeFileSync(join(dir, 'demo.proto'), PROTO);
  proto = loadPackageDefinition(loadSync(join(dir, 'demo.proto'))).demo as GrpcObject;
  const svc = (name: string) => (proto[name] as ServiceClientConstructor).service;
  upstream = new Server();
  upstream.addService(svc('Greeter'), {
    Hello: (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      const trailer = new Metadata();
      trailer.set('x-served-by', 'upstream');
      cb(null, { text: `hello ${call.request.name} via ${call.metadata.get('x-forwarded-proto')[0] ?? '?'}` }, trailer);
    },
    Count: (call: ServerWritableStream<Req, Res>) => {
      for (let i = 1; i <= (call.request.count ?? 0); i++) call.write({ text: `n${i}` });
      call.end();
    },
    Chat: (call: ServerDuplexStream<Req, Res>) => {
      call.on('data', (r: Req) => call.write({ text: `echo ${r.name}` }));
      call.on('end', () => call.end());
    },
    Fail: (_call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => cb({ code: status.NOT_FOUND, details: 'no such greeting' }),
    Slow: (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => {
      const t = setTimeout(() => cb(null, { text: 'late' }), call.request.delayMs ?? 0);
      call.on('cancelled', () => {
        slowCancelled = true;
        clearTimeout(t);
      });
    },
  });
  const hello = (call: ServerUnaryCall<Req, Res>, cb: sendUnaryData<Res>) => cb(null, { text: `hello ${call.request.name} via http` });
  upstream.addService(svc('Secure'), { Hello: hello });
  upstream.addService(svc('Limited'), { Hello: hello });
  const upstreamPort = await new Promise<number>((resolve, reject) => upstream.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  const deadPort = await freePort();
  auditFile = join(dir, 'audit.ndjson');
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  greeter: { url: "http://127.0.0.1:${upstreamPort}", protocol: h2c }
  dead: { url: "http://127.0.0.1:${deadPort}", protocol: h2c }
store: { url: "${redisUrl()}", prefix: "grpc:${run}:" }
authentication:
  apiKeys:
    keys:
      - { id: caller, hash: "${hashApiKey('caller-key')}", roles: [caller] }
      - { id: nobody, hash: "${hashApiKey('nobody-key')}", roles: [] }
roles: { caller: { permissions: ["greet:secure"] } }
routes:
  - { name: greeter, match: { path: "/demo.Greeter/*" }, public: true, upstream: greeter }
  - { name: secure, match: { path: "/demo.Secure/*" }, require: ["greet:secure"], upstream: greeter }
  - { name: limited, match: { path: "/demo.Limited/*" }, public: true, upstream: greeter, limits: [{ by: ip, rate: 1/m, burst: 1 }] }
  - { name: down, match: { path: "/demo.Down/*" }, public: true, upstream: dead }
audit:
  sinks:
    - file: { path: ${JSON.stringify(auditFile)} }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    h2c: true,
    env: { ...process.env, PORTCULLIS_AUDIT_WORKER: '0' },
    logger: createLogger({ level: 'silent' }),
  });
});

afterAll(async () => {
  for (const c of clients) c.close();
  await app?.shutdown();
  upstream?.forceShutdown();
});

function client(service: string): Client & Record<string, Unary> {
  const Ctor = proto[service] as ServiceClientConstructor;
  const c = new Ctor(new URL(app.proxyUrl).host, credentials.createInsecure()) as Client & Record<string, Unary>;
  clients.push(c);
  return c;
}

interface Called {
  readonly err: ServiceError | null;
  readonly res: Res | undefined;
  readonly trailers: Metadata | undefined;
}

function call(service: string, method: string, req: Req, md = new Metadata(), deadlineMs?: number): Promise<Called> {
  const c = client(service);
  return new Promise((resolve) => {
    let trailers: Metadata | undefined;
    const opts = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
    const inflight = c[method]!.call(c, req, md, opts, (err, res) => setImmediate(() => resolve({ err, res, trailers }))) as { on(e: 'status', f: (s: { metadata: Metadata }) => void): void };
    inflight.on('status', (s) => (trailers = s.metadata));
  });
}

const withKey = (key: string): Metadata => {
  const md = new Metadata();
  md.set('x-api-key', key);
  return md;
};

type AuditLine = { type: string; request?: { path: string }; decision?: { code: string | null; allowed: boolean }; response?: { status: number } };

/** The codes audited for `path`, once one is `want` (or after a few seconds). */
async function auditCodes(path: string, want: string): Promise<(string | null)[]> {
  for (let i = 0; i < 60; i++) {
    let lines: AuditLine[] = [];
    try {
      lines = readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"type":"request"'))
        .map((l) => JSON.parse(l) as AuditLine);
    } catch {
      // not written yet
    }
    const hits = lines.filter((l) => l.request?.path === path);
    const codes = hits.map((h) => h.decision?.code ?? null);
    if (codes.includes(want) || i === 59) return codes;
    await new Promise((r) => setTimeout(r, 50));
  }
  return [];
}

describe('gRPC calls the policy allows', () => {
  it('passes a unary call through and forwards its trailers', async () => {
    const { err, res, trailers } = await call('Greeter', 'Hello', { name: 'ada' });
    expect(err).toBeNull();
    expect(res?.text).toBe('hello ada via http');
    expect(trailers?.get('x-served-by')).toEqual(['upstream']);
  });

  it('streams a server-streaming response', async () => {
    const c = client('Greeter') as unknown as { Count(req: Req): NodeJS.ReadableStream & { on(e: 'status', f: (s: { code: number }) => void): void } };
    const got: string[] = [];
    const code = await new Promise<number>((resolve, reject) => {
      const s = c.Count({ count: 50 });
      s.on('data', (r: Res) => got.push(r.text));
      s.on('status', (st) => resolve(st.code));
      s.on('error', (e: ServiceError) => (e.code === status.OK ? undefined : reject(e)));
    });
    expect(code).toBe(status.OK);
    expect(got).toHaveLength(50);
    expect(got[49]).toBe('n50');
  });

  it('streams both ways in a bidi call', async () => {
    const c = client('Greeter') as unknown as {
      Chat(): NodeJS.ReadWriteStream & { write(r: Req): boolean; end(): void; on(e: 'status', f: (s: { code: number }) => void): void };
    };
    const s = c.Chat();
    const got: string[] = [];
    const code = new Promise<number>((resolve) => s.on('status', (st) => resolve(st.code)));
    // Each answer arrives before the next message is sent: the streams are live, not buffered to the end.
    for (const name of ['a', 'b', 'c']) {
      const next = new Promise<void>((r) =>
        s.once('data', (m: Res) => {
          got.push(m.text);
          r();
        }),
      );
      s.write({ name });
      await next;
    }
    s.end();
    expect(await code).toBe(status.OK);
    expect(got).toEqual(['echo a', 'echo b', 'echo c']);
  });

  it("passes the upstream's own error status and message through (trailers-only)", async () => {
    const { err } = await call('Greeter', 'Fail', {});
    expect(err?.code).toBe(status.NOT_FOUND);
    expect(err?.details).toBe('no such greeting');
  });

  it('lets a key with the permission through', async () => {
    const { err, res } = await call('Secure', 'Hello', { name: 'k' }, withKey('caller-key'));
    expect(err).toBeNull();
    expect(res?.text).toBe('hello k via http');
  });
});

describe('gRPC-shaped refusals', () => {
  it('answers UNAUTHENTICATED (16) without credentials, naming the reason code, audited as for HTTP', async () => {
    const { err } = await call('Secure', 'Hello', {});
    expect(err?.code).toBe(status.UNAUTHENTICATED);
    expect(err?.details).toMatch(/^AUTH_MISSING: /);
    expect(await auditCodes('/demo.Secure/Hello', 'AUTH_MISSING')).toContain('AUTH_MISSING');
  });

  it('answers PERMISSION_DENIED (7) to a key without the permission', async () => {
    const { err } = await call('Secure', 'Hello', {}, withKey('nobody-key'));
    expect(err?.code).toBe(status.PERMISSION_DENIED);
    expect(err?.details).toMatch(/^PERMISSION_DENIED: /);
  });

  it('answers RESOURCE_EXHAUSTED (8) over the rate limit', async () => {
    const first = await call('Limited', 'Hello', { name: 'x' });
    expect(first.err).toBeNull();
    const { err } = await call('Limited', 'Hello', { name: 'y' });
    expect(err?.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(err?.details).toMatch(/^RATE_LIMITED: /);
    expect(await auditCodes('/demo.Limited/Hello', 'RATE_LIMITED')).toContain('RATE_LIMITED');
  });

  it('answers UNAVAILABLE (14) when the upstream cannot be reached', async () => {
    const { err } = await call('Down', 'Hello', {});
    expect(err?.code).toBe(status.UNAVAILABLE);
    expect(err?.details).toMatch(/^UPSTREAM_ERROR: /);
  });

  it('answers UNIMPLEMENTED (12) when no route matches the method', async () => {
    const { err } = await call('Nope', 'Hello', {});
    expect(err?.code).toBe(status.UNIMPLEMENTED);
    expect(err?.details).toMatch(/^ROUTE_NOT_FOUND: /);
  });

  it('bounds the upstream call by grpc-timeout: the caller sees DEADLINE_EXCEEDED and the upstream call is cancelled', async () => {
    slowCancelled = false;
    const { err } = await call('Greeter', 'Slow', { delayMs: 5_000 }, new Metadata(), 300);
    expect(err?.code).toBe(status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 60 && !slowCancelled; i++) await new Promise((r) => setTimeout(r, 50));
    expect(slowCancelled).toBe(true);
  });

  it('answers DEADLINE_EXCEEDED itself when grpc-timeout passes, audited UPSTREAM_TIMEOUT', async () => {
    // A caller that sends grpc-timeout but keeps no timer of its own: only the gateway's deadline can end the call.
    slowCancelled = false;
    const session = h2connect(app.proxyUrl);
    const trailers = await new Promise<Record<string, unknown>>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': 'POST', ':path': '/demo.Greeter/Slow', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      let head: Record<string, unknown> = {};
      req.on('response', (h) => (head = h));
      req.on('trailers', (t) => (head = { ...head, ...t }));
      req.on('end', () => resolve(head));
      req.on('error', reject);
      req.resume();
      // Req { delayMs: 5000 } as one uncompressed gRPC message.
      req.end(Buffer.from([0, 0, 0, 0, 3, 0x18, 0x88, 0x27]));
    });
    session.close();
    expect(trailers[':status']).toBe(200);
    expect(trailers['grpc-status']).toBe('4');
    expect(String(trailers['grpc-message'])).toMatch(/^UPSTREAM_TIMEOUT: /);
    for (let i = 0; i < 60 && !slowCancelled; i++) await new Promise((r) => setTimeout(r, 50));
    expect(slowCancelled).toBe(true);
    expect(await auditCodes('/demo.Greeter/Slow', 'UPSTREAM_TIMEOUT')).toContain('UPSTREAM_TIMEOUT');
  });

  it('leaves nothing in flight after every call ended', async () => {
    for (let i = 0; i < 60 && inFlight.n !== 0; i++) await new Promise((r) => setTimeout(r, 50));
    expect(inFlight.n).toBe(0);
  });
});
