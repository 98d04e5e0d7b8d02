// CORS, rewrites, per-route timeouts, preserveHost and header transforms through the built CLI, a
// real upstream that records what it received, and raw node:http requests (Host as written).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serveCli } from '../helpers/cli.js';

interface Arrival {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly raw: readonly string[];
}

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

const KEY = 'pcs_edge_test_key';
const sha = (k: string): string => `sha256:${createHash('sha256').update(k).digest('hex')}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: Server;
let gw: Serving;
let dir: string;
const arrivals: Arrival[] = [];

function send(method: string, target: string, headers: Record<string, string> = {}): Promise<Reply> {
  const url = new URL(gw.proxy);
  return new Promise((resolve, reject) => {
    const req = request({ host: url.hostname, port: url.port, method, path: target, headers: { connection: 'close', ...headers }, setHost: headers.host === undefined }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    arrivals.push({ url: req.url ?? '', headers: req.headers, raw: [...req.rawHeaders] });
    req.resume();
    const answer = (): void => {
      res.writeHead(200, { vary: 'Accept-Encoding', 'access-control-allow-origin': '*', 'x-upstream-secret': 's3cret', 'content-type': 'text/plain' });
      res.end('upstream');
    };
    if (req.url?.startsWith('/slow')) setTimeout(answer, 1_000);
    else answer();
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-edge-'));
  writeFileSync(
    path.join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app: { url: "${up}" }
  kept: { url: "${up}", preserveHost: true }
authentication:
  apiKeys:
    header: x-api-key
    keys:
      - { id: k1, hash: "${sha(KEY)}", tenant: acme, subject: alice, roles: [reader] }
roles:
  reader: { permissions: [items:read] }
cors:
  origins: ["https://app.example.com", "https://*.example.org"]
  headers: [x-api-key, content-type]
  exposeHeaders: [x-request-id]
  maxAge: 10m
routes:
  - name: items
    match: { methods: [GET, PUT], path: "/api/items/{id}" }
    upstream: app
    require: [items:read]
    rewrite: { path: "/v2/things/{id}" }
    headers:
      request: { set: { x-caller: "user={principal.subject};t={principal.tenant};r={route}" }, remove: [x-debug] }
      response: { set: { x-served-by: portcullis }, remove: [x-upstream-secret] }
  - name: api
    match: { path: "/api/**" }
    public: true
    upstream: app
    rewrite: { stripPrefix: /api, addPrefix: /internal }
  - name: slow
    match: { path: /slow }
    public: true
    upstream: app
    timeouts: { response: 300ms }
  - name: slow-default
    match: { path: /slow-default }
    public: true
    upstream: app
  - name: kept
    match: { path: /kept }
    public: true
    upstream: kept
audit:
  sinks: [{ file: { path: audit.ndjson } }]
`,
  );
  gw = await serveCli(path.join(dir, 'policy.yaml'));
}, 60_000);

afterAll(async () => {
  await gw?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

const ORIGIN = 'https://app.example.com';

describe('CORS through the built CLI', () => {
  it('answers an allowed preflight itself with 204, without credentials, even for a route that has no OPTIONS method', async () => {
    arrivals.length = 0;
    const r = await send('OPTIONS', '/api/items/7', { origin: ORIGIN, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'X-Api-Key, Content-Type' });
    expect(r.status).toBe(204);
    expect(r.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(r.headers['access-control-allow-methods']).toBe('GET, PUT');
    expect(r.headers['access-control-allow-headers']).toBe('x-api-key, content-type');
    expect(r.headers['access-control-max-age']).toBe('600');
    expect(r.headers.vary).toBe('Origin');
    expect(r.headers['x-request-id']).toBeTruthy();
    expect(r.body).toBe('');
    expect(arrivals).toHaveLength(0);
  });

  it('refuses a preflight from another origin, for another method or with another header with 403 CORS_REJECTED', async () => {
    const origin = await send('OPTIONS', '/api/items/7', { origin: 'https://evil.test', 'access-control-request-method': 'GET' });
    const method = await send('OPTIONS', '/api/items/7', { origin: ORIGIN, 'access-control-request-method': 'DELETE' });
    const header = await send('OPTIONS', '/api/items/7', { origin: ORIGIN, 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-secret' });
    for (const r of [origin, method, header]) {
      expect(r.status).toBe(403);
      expect(r.headers['content-type']).toBe('application/problem+json');
      expect((JSON.parse(r.body) as { code: string }).code).toBe('CORS_REJECTED');
      expect(r.headers['access-control-allow-origin']).toBeUndefined();
    }
  });

  it('accepts a one-label wildcard origin and nothing deeper', async () => {
    const one = await send('OPTIONS', '/api/items/7', { origin: 'https://shop.example.org', 'access-control-request-method': 'GET' });
    const two = await send('OPTIONS', '/api/items/7', { origin: 'https://a.shop.example.org', 'access-control-request-method': 'GET' });
    expect(one.status).toBe(204);
    expect(one.headers['access-control-allow-origin']).toBe('https://shop.example.org');
    expect(two.status).toBe(403);
  });

  it("adds the CORS headers to an upstream answer, appending Origin to the upstream's Vary and replacing its Access-Control headers", async () => {
    const r = await send('GET', '/api/items/7', { origin: ORIGIN, 'x-api-key': KEY });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(r.headers['access-control-expose-headers']).toBe('x-request-id');
    expect(r.headers.vary).toBe('Accept-Encoding, Origin');
  });

  it('carries the CORS headers on a denial, so a browser script can read the 401', async () => {
    const r = await send('GET', '/api/items/7', { origin: ORIGIN });
    expect(r.status).toBe(401);
    expect(r.headers['access-control-allow-origin']).toBe(ORIGIN);
    expect(r.headers.vary).toBe('Origin');
  });

  it('gives a disallowed origin no CORS headers, but still Vary: Origin', async () => {
    const r = await send('GET', '/api/items/7', { origin: 'https://evil.test', 'x-api-key': KEY });
    expect(r.status).toBe(200);
    expect(r.headers['access-control-allow-origin']).toBeUndefined();
    expect(r.headers.vary).toBe('Accept-Encoding, Origin');
  });
});

describe('rewrites through the built CLI', () => {
  it('checks the public path and sends the rewritten one, with the query, and the audit event records both', async () => {
    arrivals.length = 0;
    const r = await send('GET', '/api/items/a%20b?x=1', { 'x-api-key': KEY });
    expect(r.status).toBe(200);
    expect(arrivals.map((a) => a.url)).toEqual(['/v2/things/a%20b?x=1']);
    const id = r.headers['x-request-id'] as string;
    const file = path.join(dir, 'audit.ndjson');
    const end = Date.now() + 20_000;
    let event: { request: { path: string; upstreamPath: string | null } } | undefined;
    while (event === undefined && Date.now() < end) {
      if (existsSync(file)) {
        const line = readFileSync(file, 'utf8')
          .split('\n')
          .find((l) => l.includes(id));
        if (line !== undefined) event = JSON.parse(line) as typeof event;
      }
      if (event === undefined) await sleep(50);
    }
    expect(event?.request.path).toBe('/api/items/a b?x=1');
    expect(event?.request.upstreamPath).toBe('/v2/things/a%20b');
  });

  it('strips and adds prefixes', async () => {
    arrivals.length = 0;
    await send('GET', '/api/foo/bar?q=2');
    await send('GET', '/api');
    expect(arrivals.map((a) => a.url)).toEqual(['/internal/foo/bar?q=2', '/internal']);
  });
});

describe('header transforms through the built CLI', () => {
  it('sets request headers from the principal and the route, removes the listed ones, and transforms the response', async () => {
    arrivals.length = 0;
    const r = await send('GET', '/api/items/1', { 'x-api-key': KEY, 'x-debug': '1', 'x-caller': 'spoofed', x_caller: 'spoofed', x_debug: '1' });
    expect(r.status).toBe(200);
    const a = arrivals[0]!;
    expect(a.headers['x-caller']).toBe('user=alice;t=acme;r=items');
    expect(a.raw.filter((n) => n.toLowerCase() === 'x-caller')).toHaveLength(1);
    expect(a.headers['x-debug']).toBeUndefined();
    expect(a.headers.x_caller).toBeUndefined();
    expect(a.headers.x_debug).toBeUndefined();
    expect(r.headers['x-served-by']).toBe('portcullis');
    expect(r.headers['x-upstream-secret']).toBeUndefined();
  });
});

describe('per-route timeouts and preserveHost through the built CLI', () => {
  it("times out a route by its own response timeout while another route keeps the upstream's", async () => {
    const slow = await send('GET', '/slow');
    expect(slow.status).toBe(504);
    expect((JSON.parse(slow.body) as { code: string }).code).toBe('UPSTREAM_TIMEOUT');
    const dflt = await send('GET', '/slow-default');
    expect(dflt.status).toBe(200);
  }, 20_000);

  it("sends the client's Host to an upstream with preserveHost, and its own host otherwise", async () => {
    arrivals.length = 0;
    await send('GET', '/kept', { host: 'shop.example.com:8443' });
    await send('GET', '/api/x', { host: 'shop.example.com:8443' });
    expect(arrivals[0]!.headers.host).toBe('shop.example.com:8443');
    expect(arrivals[1]!.headers.host).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  it('refuses a Host that is not one plain authority before forwarding it', async () => {
    arrivals.length = 0;
    const r = await send('GET', '/kept', { host: 'shop.example.com/evil' });
    expect(r.status).toBe(400);
    expect(arrivals).toHaveLength(0);
  });
});
