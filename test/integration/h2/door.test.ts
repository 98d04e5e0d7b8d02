// HTTP/2 through the real app: h2c with prior knowledge on the cleartext listener (beside HTTP/1.1),
// and h2 over a TLS server the test builds with ALPN, both handing sockets to the same door. The
// decision is the engine's: same routes, refusals, limits and audit codes as HTTP/1.1.

import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { inFlight } from '../../../src/observability/metrics.js';

interface Arrival {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

let upstream: Server;
let app: App;
let dir: string;
let auditFile: string;
let tlsServer: TlsServer;
let tlsPort: number;
const arrivals: Arrival[] = [];
// Never execFileSync against the in-process gateway: it would block the loop that must answer.
const run = promisify(execFile);

beforeAll(async () => {
  upstream = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      arrivals.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      res.setHeader('content-type', 'text/plain');
      res.end(`upstream saw ${req.method} ${req.url} ${body.length}`);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(join(tmpdir(), 'pcs-h2-'));
  auditFile = join(dir, 'audit.ndjson');
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
authentication:
  apiKeys: { keys: [{ id: k1, hash: "${hashApiKey('secret-1')}", roles: [user] }] }
roles: { user: { permissions: ["api:use"] } }
routes:
  - { name: open, match: { path: "/open/**" }, public: true }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
  - { name: small, match: { path: "/small/**" }, public: true, maxBodySize: 10b }
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
  // The TLS listener with ALPN, as the gateway's own offers it: "h2" sockets go to the door.
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  );
  tlsServer = createTlsServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')), ALPNProtocols: ['h2', 'http/1.1'] }, (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'h2') app.h2.accept(socket);
    else socket.destroy();
  });
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  tlsPort = (tlsServer.address() as AddressInfo).port;
});

afterAll(async () => {
  await app?.shutdown();
  tlsServer?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

interface H2Answer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** One HTTP/2 request on a fresh session (h2c prior knowledge, or h2 over the test's TLS server). */
async function h2(path: string, headers: Record<string, string> = {}, body?: string, tls = false): Promise<H2Answer> {
  const session = tls ? connect(`https://localhost:${tlsPort}`, { ca: readFileSync(join(dir, 'cert.pem')) }) : connect(app.proxyUrl);
  try {
    return await new Promise<H2Answer>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': body === undefined ? 'GET' : 'POST', ':path': path, ...headers }, { endStream: body === undefined });
      let status = 0;
      let head: IncomingHttpHeaders = {};
      let data = '';
      req.on('response', (h) => {
        status = Number(h[':status']);
        head = h;
      });
      req.on('data', (d: Buffer) => (data += d.toString()));
      req.on('end', () => resolve({ status, headers: head, body: data }));
      req.on('error', reject);
      if (body !== undefined) req.end(body);
    });
  } finally {
    session.close();
  }
}

type AuditLine = { type: string; request?: { method: string; path: string; route: string | null }; decision?: { code: string | null; allowed: boolean }; response?: { status: number } };

async function auditFor(path: string): Promise<AuditLine> {
  for (let i = 0; i < 100; i++) {
    let lines: AuditLine[] = [];
    try {
      lines = readFileSync(auditFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"type":"request"'))
        .map((l) => JSON.parse(l) as AuditLine);
    } catch {
      // not written yet
    }
    const hit = lines.find((l) => l.request?.path === path);
    if (hit !== undefined) return hit;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no audit event for ${path}`);
}

describe('HTTP/2 with prior knowledge (h2c) on the cleartext listener', () => {
  it('forwards an allowed request to the upstream and streams the answer back', async () => {
    arrivals.length = 0;
    const a = await h2('/open/hello?x=1');
    expect(a.status).toBe(200);
    expect(a.body).toBe('upstream saw GET /open/hello?x=1 0');
    expect(a.headers['x-request-id']).toMatch(/./);
    expect(arrivals[0]!.headers['x-forwarded-proto']).toBe('http');
    // :authority became the Host the engine and the upstream's X-Forwarded-Host see.
    expect(arrivals[0]!.headers['x-forwarded-host']).toBe(new URL(app.proxyUrl).host);
  });

  it('still serves HTTP/1.1 on the same listener', async () => {
    const res = await fetch(`${app.proxyUrl}/open/h1`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('upstream saw GET /open/h1 0');
  });

  it('streams a request body without Content-Length to the upstream', async () => {
    arrivals.length = 0;
    const a = await h2('/open/upload', { 'content-type': 'text/plain' }, 'x'.repeat(100_000));
    expect(a.status).toBe(200);
    expect(a.body).toBe('upstream saw POST /open/upload 100000');
    expect(arrivals[0]!.body.length).toBe(100_000);
  });

  it('refuses with the same problem+json, status and challenge as HTTP/1.1, and audits the same code', async () => {
    const a = await h2('/api/no-key');
    expect(a.status).toBe(401);
    expect(a.headers['content-type']).toBe('application/problem+json');
    expect(a.headers['www-authenticate']).toMatch(/ApiKey/);
    expect(JSON.parse(a.body).code).toBe('AUTH_MISSING');
    const ev = await auditFor('/api/no-key');
    expect(ev.decision).toMatchObject({ code: 'AUTH_MISSING', allowed: false });
    expect(ev.response?.status).toBe(401);
  });

  it('lets a request with a valid key through, and audits it allowed', async () => {
    const a = await h2('/api/with-key', { 'x-api-key': 'secret-1' });
    expect(a.status).toBe(200);
    const ev = await auditFor('/api/with-key');
    expect(ev.decision).toMatchObject({ code: null, allowed: true });
    expect(ev.request?.route).toBe('api');
  });

  it('answers 404 ROUTE_NOT_FOUND for a path no route matches', async () => {
    const a = await h2('/nowhere');
    expect(a.status).toBe(404);
    expect(JSON.parse(a.body).code).toBe('ROUTE_NOT_FOUND');
  });

  it('counts a body over maxBodySize while it streams and answers 413', async () => {
    const a = await h2('/small/up', {}, 'y'.repeat(5000));
    expect(a.status).toBe(413);
    expect(JSON.parse(a.body).code).toBe('BODY_TOO_LARGE');
  });

  it('refuses a Host header that disagrees with :authority with 400', async () => {
    arrivals.length = 0;
    // Both sent: node:http2 leaves :authority out when given a Host, so it is named explicitly.
    const a = await h2('/open/spoof', { ':authority': new URL(app.proxyUrl).host, host: 'evil.example' });
    expect(a.status).toBe(400);
    expect(JSON.parse(a.body).code).toBe('BAD_REQUEST');
    expect(arrivals).toHaveLength(0);
  });

  it('answers 431 HEADERS_TOO_LARGE to a header list over 16 KiB, as HTTP/1.1 does', async () => {
    arrivals.length = 0;
    const a = await h2('/open/big-head', { 'x-big': 'b'.repeat(20_000) });
    expect(a.status).toBe(431);
    expect(JSON.parse(a.body).code).toBe('HEADERS_TOO_LARGE');
    expect(arrivals).toHaveLength(0);
  });

  it('refuses CONNECT (node:http2 answers 405 itself) and never opens a tunnel', async () => {
    arrivals.length = 0;
    const session = connect(app.proxyUrl);
    const status = await new Promise<number>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': 'CONNECT', ':authority': 'internal.example:443' });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
    });
    session.close();
    expect(status).toBe(405);
    expect(arrivals).toHaveLength(0);
  });

  it('accepts a Host header equal to :authority', async () => {
    const a = await h2('/open/same-host', { host: new URL(app.proxyUrl).host });
    expect(a.status).toBe(200);
  });

  it('refuses a path the canonicaliser cannot make unambiguous, as for HTTP/1.1', async () => {
    const a = await h2('/open/%2e%2e/%2e%2e/etc');
    expect([400, 404]).toContain(a.status);
    expect(arrivals.some((x) => x.url.includes('etc'))).toBe(false);
  });

  it('answers curl --http2-prior-knowledge', async () => {
    const { stdout: out } = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '-', '-w', '\n%{http_version} %{http_code}', `${app.proxyUrl}/open/curl`]);
    expect(out).toBe('upstream saw GET /open/curl 0\n2 200');
  });

  it('leaves nothing in flight once every stream has ended', async () => {
    await h2('/open/last');
    for (let i = 0; i < 50 && inFlight.n !== 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(inFlight.n).toBe(0);
  });
});

describe('HTTP/2 over TLS (ALPN h2)', () => {
  it('serves a request on a socket that chose h2', async () => {
    arrivals.length = 0;
    const a = await h2('/open/tls', {}, undefined, true);
    expect(a.status).toBe(200);
    expect(a.body).toBe('upstream saw GET /open/tls 0');
    expect(arrivals[0]!.headers['x-forwarded-proto']).toBe('https');
  });

  it('refuses over TLS as over h2c', async () => {
    const a = await h2('/api/tls-no-key', {}, undefined, true);
    expect(a.status).toBe(401);
    expect(JSON.parse(a.body).code).toBe('AUTH_MISSING');
  });

  it('answers curl --http2 over TLS', async () => {
    const { stdout: out } = await run('curl', ['-sk', '--http2', '-o', '-', '-w', '\n%{http_version} %{http_code}', `https://127.0.0.1:${tlsPort}/open/curl-tls`]);
    expect(out).toBe('upstream saw GET /open/curl-tls 0\n2 200');
  });
});
