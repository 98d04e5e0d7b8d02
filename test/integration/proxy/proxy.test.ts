// The proxy core on real sockets: a real upstream on port 0, the real app, real HTTP clients.

import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request as undiciRequest } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;
let handler: Handler = (req, res) => {
  req.resume();
  req.on('end', () => res.end(JSON.stringify({ path: req.url, headers: req.headers })));
};
const upstreamClosed: string[] = [];
let upstream: Server;
let upstreamUrl: string;
let app: App;
let base: string;
let dir: string;

const policy = (extraRoute = '') => `version: 1
upstreams:
  app:
    url: ${upstreamUrl}
    timeouts: { connect: 1s, response: 500ms }
authentication: { apiKeys: {} }
routes:
  - name: open
    match: { path: "/open/**" }
    public: true
${extraRoute}  - name: private
    match: { path: "/private/**" }
`;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.once('close', () => {
      if (!res.writableEnded) upstreamClosed.push(req.url ?? '');
    });
    handler(req, res);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-proxy-'));
  writeFileSync(join(dir, 'policy.yaml'), policy());
  app = await startApp({
    policyPath: dir,
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 2000,
    demo: false,
    watch: true,
    logger: createLogger({ level: 'silent' }),
  });
  base = app.proxyUrl;
});

afterAll(async () => {
  await app?.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await undiciRequest(base + path, { headers });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: () => JSON.parse(text) };
}

/** Sends a request exactly as written (raw bytes), returns the raw response head. */
function raw(text: string): Promise<string> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d) => {
      out += d.toString();
      if (out.includes('\r\n\r\n')) {
        s.destroy();
        resolve(out);
      }
    });
    s.on('error', reject);
  });
}

/** Sends a request with Connection: close and returns the whole response. */
function rawFull(text: string): Promise<string> {
  const { port } = new URL(base);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (d) => (out += d.toString()));
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

describe('proxy core', () => {
  it('forwards a public route and echoes a generated request id', async () => {
    const r = await get('/open/x');
    expect(r.status).toBe(200);
    expect(r.json().path).toBe('/open/x');
    expect(r.headers['x-request-id']).toMatch(/^[\w-]+$/);
    expect(r.json().headers['x-request-id']).toBe(r.headers['x-request-id']);
  });

  it('answers an unknown route with 404 problem+json ROUTE_NOT_FOUND', async () => {
    const r = await get('/nowhere');
    expect(r.status).toBe(404);
    expect(r.headers['content-type']).toBe('application/problem+json');
    expect(r.json()).toMatchObject({ code: 'ROUTE_NOT_FOUND', status: 404, requestId: r.headers['x-request-id'] });
  });

  it('denies a non-public route without credentials (default deny)', async () => {
    const r = await get('/private/x');
    expect(r.status).toBe(401);
    expect(r.json().code).toBe('AUTH_MISSING');
  });

  it('refuses an encoded slash with 400 BAD_REQUEST', async () => {
    const head = await raw('GET /open/a%2F..%2Fprivate HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1.1 400/);
  });

  // The canonical-path table end to end: what the client writes → the status, and for 200 the path
  // the upstream received (which is the path that was matched).
  const table: readonly (readonly [string, number, string?])[] = [
    ['/open/a%2Fb', 400],
    ['/open/a%5Cb', 400],
    ['/open/a\\b', 400],
    ['/open/a%00b', 400],
    ['/open/a%0Ab', 400],
    ['/open/a%zzb', 400],
    ['/open/a%c3', 400],
    ['/open/a%252Fb', 200, '/open/a%252Fb'],
    ['/open/a;b=c', 200, '/open/a;b=c'],
    ['/open/%2e%2e/open/z', 200, '/open/z'],
    ['/open/../../open/up', 200, '/open/up'],
    ['/open/a//b', 200, '/open/a//b'],
    ['/open/caf%C3%A9', 200, '/open/caf%C3%A9'],
  ];
  for (const [target, status, forwarded] of table) {
    it(`answers ${status} for ${target}${forwarded ? ` and forwards ${forwarded}` : ''}`, async () => {
      const res = await rawFull(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      expect(res).toMatch(new RegExp(`^HTTP/1.1 ${status} `));
      const body = JSON.parse(res.slice(res.indexOf('\r\n\r\n') + 4)) as { path?: string; code?: string; requestId?: string };
      if (forwarded !== undefined) expect(body.path).toBe(forwarded);
      else expect(body).toMatchObject({ code: 'BAD_REQUEST', requestId: expect.stringMatching(/.+/) });
    });
  }

  it('refuses a duplicate Host header with 400', async () => {
    const res = await rawFull('GET /open/x HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n');
    expect(res).toMatch(/^HTTP\/1.1 400 /);
  });

  it('accepts the absolute form only for the Host it names', async () => {
    const ok = await rawFull('GET http://x/open/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(ok).toMatch(/^HTTP\/1.1 200 /);
    expect(ok).toContain('"path":"/open/abs"');
    const other = await rawFull('GET http://evil/open/abs HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(other).toMatch(/^HTTP\/1.1 400 /);
    expect(other).toContain('"code":"BAD_REQUEST"');
  });

  it('replaces the X-Request-Id of an untrusted client and forwards the same id it echoes', async () => {
    const untrusted = await get('/open/id', { 'x-request-id': 'client-chosen-id' });
    expect(untrusted.headers['x-request-id']).not.toBe('client-chosen-id');
    expect(untrusted.json().headers['x-request-id']).toBe(untrusted.headers['x-request-id']);
  });

  it('forwards exactly the path it matched after resolving dot segments', async () => {
    const head = await raw('GET /private/../open/./y?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1.1 200/);
    const r = await get('/open/%61b');
    expect(r.json().path).toBe('/open/ab');
  });

  it('strips hop-by-hop and Connection-listed headers in both directions', async () => {
    const prev = handler;
    handler = (req, res) => {
      req.resume();
      res.setHeader('connection', 'x-upstream-secret');
      res.setHeader('x-upstream-secret', 'no');
      res.setHeader('keep-alive', 'timeout=1');
      res.setHeader('x-kept', 'yes');
      res.end(JSON.stringify({ headers: req.headers }));
    };
    try {
      const head = await raw('GET /open/h HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nProxy-Connection: x\r\nTE: trailers\r\nX-Plain: 2\r\n\r\n');
      expect(head.toLowerCase()).not.toContain('x-upstream-secret');
      expect(head.toLowerCase()).toContain('x-kept: yes');
      const full = await rawFull('GET /open/h HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Plain: 2\r\n\r\n');
      const seen = JSON.parse(full.slice(full.indexOf('\r\n\r\n') + 4)).headers;
      expect(seen['x-secret']).toBeUndefined();
      expect(seen['keep-alive']).toBeUndefined();
      expect(seen['x-plain']).toBe('2');
    } finally {
      handler = prev;
    }
  });

  it('tells the upstream its own Host, never the one the client sent', async () => {
    const prev = handler;
    handler = (req, res) => res.end(JSON.stringify({ host: req.headers.host, forwardedHost: req.headers['x-forwarded-host'] }));
    try {
      const r = await get('/open/host', { host: 'api.example.com' });
      expect(r.json()).toEqual({ host: new URL(upstreamUrl).host, forwardedHost: 'api.example.com' });
    } finally {
      handler = prev;
    }
  });

  it('relays response header bytes unchanged, and bodies whether their length is declared, chunked or absent (HEAD)', async () => {
    const prev = handler;
    const big = 'y'.repeat(300_000); // arrives in many chunks
    handler = (req, res) => {
      req.resume();
      if (req.url === '/open/latin1') {
        res.setHeader('x-name', Buffer.from('caf\u00e9 \u00fc', 'latin1').toString('latin1'));
        return res.end('ok');
      }
      if (req.url === '/open/chunked') {
        res.write('first,');
        return setTimeout(() => res.end('second'), 20);
      }
      res.setHeader('content-length', String(big.length));
      res.end(req.method === 'HEAD' ? undefined : big);
    };
    try {
      const head = await raw('GET /open/latin1 HTTP/1.1\r\nHost: x\r\n\r\n');
      expect(Buffer.from(head, 'latin1').includes(Buffer.from('x-name: caf\u00e9 \u00fc', 'latin1'))).toBe(true);
      const chunked = await get('/open/chunked');
      expect(chunked.text).toBe('first,second');
      const long = await get('/open/long');
      expect(long.headers['content-length']).toBe(String(big.length));
      expect(long.text).toBe(big);
      const res = await undiciRequest(`${base}/open/long`, { method: 'HEAD' });
      await res.body.text();
      expect(res.statusCode).toBe(200);
      expect(res.headers['content-length']).toBe(String(big.length));
      // The connection is still usable afterwards: nothing of a HEAD body was left on it.
      expect((await get('/open/chunked')).text).toBe('first,second');
    } finally {
      handler = prev;
    }
  });

  it('overwrites X-Forwarded-* and X-Request-Id from an untrusted client', async () => {
    const r = await get('/open/xff', { 'x-forwarded-for': '6.6.6.6', 'X-Forwarded-Host': 'evil', 'x-forwarded-proto': 'https', 'x-request-id': 'chosen-by-client' });
    const seen = r.json().headers;
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
    expect(seen['x-forwarded-host']).not.toBe('evil');
    expect(seen['x-request-id']).not.toBe('chosen-by-client');
  });

  it('propagates a valid traceparent with a new span and starts one otherwise', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await get('/open/t', { traceparent: `00-${trace}-00f067aa0ba902b7-01` });
    expect(r.json().headers.traceparent).toMatch(new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    expect(r.json().headers.traceparent).not.toContain('00f067aa0ba902b7');
    const fresh = await get('/open/t', { traceparent: 'garbage' });
    expect(fresh.json().headers.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('answers 504 UPSTREAM_TIMEOUT when the upstream is slower than the response timeout', async () => {
    const prev = handler;
    handler = (_req, res) => setTimeout(() => res.end('late'), 2000);
    try {
      const t0 = Date.now();
      const r = await get('/open/slow');
      expect(r.status).toBe(504);
      expect(r.json().code).toBe('UPSTREAM_TIMEOUT');
      expect(Date.now() - t0).toBeLessThan(1500);
    } finally {
      handler = prev;
    }
  });

  it('cancels the upstream request when the client aborts', async () => {
    const prev = handler;
    handler = () => undefined; // never answers
    try {
      const ac = new AbortController();
      const pending = undiciRequest(`${base}/open/abort-me`, { signal: ac.signal }).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 150));
      ac.abort();
      await pending;
      const until = Date.now() + 2000;
      while (!upstreamClosed.includes('/open/abort-me') && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      expect(upstreamClosed).toContain('/open/abort-me');
    } finally {
      handler = prev;
    }
  });

  it('answers 502 UPSTREAM_ERROR when the upstream refuses connections', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const d = mkdtempSync(join(tmpdir(), 'portcullis-refused-'));
    writeFileSync(join(d, 'p.yaml'), `version: 1\nupstreams: { gone: { url: "http://127.0.0.1:${port}" } }\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n`);
    const other = await startApp({
      policyPath: join(d, 'p.yaml'),
      listen: { host: '127.0.0.1', port: 0 },
      admin: null,
      drainMs: 0,
      demo: false,
      watch: false,
      logger: createLogger({ level: 'silent' }),
    });
    try {
      const res = await undiciRequest(`${other.proxyUrl}/x`);
      expect(res.statusCode).toBe(502);
      expect(((await res.body.json()) as { code: string }).code).toBe('UPSTREAM_ERROR');
    } finally {
      await other.shutdown();
    }
  });

  it('swaps a policy edit under continuous load without a failed request, and keeps serving after a broken edit', async () => {
    const agent = new Agent({ connections: 10 });
    let failures = 0;
    let done = 0;
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const r = await undiciRequest(`${base}/open/load`, { dispatcher: agent }).catch(() => undefined);
        if (r === undefined || r.statusCode !== 200) failures++;
        await r?.body.dump();
        done++;
      }
    };
    const workers = Array.from({ length: 8 }, loop);
    const firstHash = app.policy.plan.hash;
    await new Promise((r) => setTimeout(r, 300));
    // An atomic save, as editors do it: write a temp file, rename over the policy.
    writeFileSync(join(dir, '.policy.yaml.tmp'), policy('  - name: added\n    match: { path: "/added" }\n    public: true\n'));
    renameSync(join(dir, '.policy.yaml.tmp'), join(dir, 'policy.yaml'));
    const until = Date.now() + 3000;
    while (app.policy.plan.hash === firstHash && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    expect(app.policy.plan.hash).not.toBe(firstHash);
    const goodHash = app.policy.plan.hash;
    writeFileSync(join(dir, 'policy.yaml'), 'version: 1\nroutes: [ {name: broken\n');
    await new Promise((r) => setTimeout(r, 800));
    stop = true;
    await Promise.all(workers);
    await agent.close();
    expect(app.policy.plan.hash).toBe(goodHash);
    expect(done).toBeGreaterThan(50);
    expect(failures).toBe(0);
    writeFileSync(join(dir, 'policy.yaml'), policy());
  });

  it('lets an in-flight request finish while draining on shutdown', async () => {
    const d = mkdtempSync(join(tmpdir(), 'portcullis-drain-'));
    const slow = createServer((_req, res) => setTimeout(() => res.end('finished'), 300));
    await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
    writeFileSync(
      join(d, 'p.yaml'),
      `version: 1\nupstreams: { s: { url: "http://127.0.0.1:${(slow.address() as AddressInfo).port}" } }\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n`,
    );
    const other = await startApp({
      policyPath: join(d, 'p.yaml'),
      listen: { host: '127.0.0.1', port: 0 },
      admin: null,
      drainMs: 5000,
      demo: false,
      watch: false,
      logger: createLogger({ level: 'silent' }),
    });
    const body = new Promise<string>((resolve, reject) => {
      request(`${other.proxyUrl}/slow`, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve(t));
      })
        .on('error', reject)
        .end();
    });
    await new Promise((r) => setTimeout(r, 100));
    await other.shutdown();
    expect(await body).toBe('finished');
    slow.closeAllConnections();
    await new Promise<void>((r) => slow.close(() => r()));
  });
});
