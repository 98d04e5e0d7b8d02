// WebSocket upgrades through the pipeline, with the real `ws` client and server on real sockets.
import { createHash } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';
import { registry } from '../../../src/observability/metrics.js';

const KEY = 'ws-secret-key-123';
let echo: Server;
let wss: WebSocketServer;
let refusing: Server;
let echoConnections = 0;
const echoHeaders: Record<string, string | string[] | undefined>[] = [];
let app: App;
let wsBase: string;

const origin = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;

beforeAll(async () => {
  echo = createServer((_req, res) => res.end('plain'));
  echo.on('connection', () => echoConnections++);
  wss = new WebSocketServer({ server: echo });
  wss.on('connection', (ws, req) => {
    echoHeaders.push(req.headers);
    ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${data.toString()}`, { binary: isBinary }));
    ws.send('hello from upstream');
  });
  refusing = createServer();
  refusing.on('upgrade', (_req, socket: Socket) => {
    socket.end('HTTP/1.1 426 Upgrade Required\r\ncontent-type: text/plain\r\ncontent-length: 10\r\nconnection: close\r\n\r\nnot here\r\n');
  });
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-ws-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  echo: { url: "${origin(echo)}" }
  refusing: { url: "${origin(refusing)}" }
authentication:
  apiKeys:
    keys:
      - { id: ws-client, hash: "sha256:${createHash('sha256').update(KEY).digest('hex')}", tenant: acme }
routes:
  - { name: ws, match: { path: "/ws/**" }, upstream: echo }
  - { name: refuse, match: { path: "/refuse/**" }, upstream: refusing, public: true }
`,
  );
  app = await startApp({
    policyPath: dir,
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  wsBase = app.proxyUrl.replace('http:', 'ws:');
});

afterAll(async () => {
  await app?.shutdown();
  wss.close();
  for (const s of [echo, refusing]) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

/** Opens a ws; resolves with the socket or with the non-101 response status and body. */
function open(path: string, headers: Record<string, string> = {}): Promise<{ ws?: WebSocket; status?: number | undefined; body?: string; contentType?: string | undefined }> {
  return new Promise((resolve) => {
    const ws = new WebSocket(wsBase + path, { headers });
    // Frames may arrive in the same chunk as the 101: queue them from the start.
    const queue: Buffer[] = [];
    const waiting: ((b: Buffer) => void)[] = [];
    ws.on('message', (d) => {
      const w = waiting.shift();
      if (w) w(d as Buffer);
      else queue.push(d as Buffer);
    });
    inbox.set(ws, () => new Promise<Buffer>((r) => (queue.length > 0 ? r(queue.shift()!) : waiting.push(r))));
    ws.once('open', () => resolve({ ws }));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode, body, contentType: res.headers['content-type'] }));
    });
    ws.once('error', () => undefined);
  });
}

async function gauge(name: string): Promise<number> {
  const m = (await registry.getSingleMetric(name)!.get()).values[0];
  return m?.value ?? 0;
}

/** Polls until `read` returns `want` (the proxy sees a close a little after the client does). */
async function until(read: () => Promise<number>, want: number): Promise<number> {
  const deadline = Date.now() + 2_000;
  let v = await read();
  while (v !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
    v = await read();
  }
  return v;
}

const inbox = new WeakMap<WebSocket, () => Promise<Buffer>>();
async function nextMessage(ws: WebSocket): Promise<string> {
  return (await inbox.get(ws)!()).toString();
}

describe('WebSocket upgrades', () => {
  it('answers an unauthenticated upgrade with 401 problem+json and never connects upstream', async () => {
    const before = echoConnections;
    const r = await open('/ws/chat');
    expect(r.status).toBe(401);
    expect(r.contentType).toBe('application/problem+json');
    expect(JSON.parse(r.body!).code).toBe('AUTH_MISSING');
    expect(echoConnections).toBe(before);
  });

  it('tunnels an authorized upgrade with identity headers and echoes frames both ways', async () => {
    const inFlightBefore = await gauge('portcullis_in_flight_requests');
    const r = await open('/ws/chat', { 'x-api-key': KEY, 'x-auth-tenant': 'forged' });
    const ws = r.ws!;
    expect(await nextMessage(ws)).toBe('hello from upstream');
    ws.send('ping');
    expect(await nextMessage(ws)).toBe('echo:ping');
    ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const bin = await inbox.get(ws)!();
    expect([...bin]).toEqual([1, 2, 3]);
    expect(await gauge('portcullis_websockets_open')).toBe(1);
    const seen = echoHeaders.at(-1)!;
    expect(seen['x-api-key']).toBeUndefined(); // credentials are not forwarded
    expect(seen['x-auth-tenant']).not.toBe('forged');
    ws.close();
    await new Promise((resolve) => ws.once('close', resolve));
    expect(await until(() => gauge('portcullis_websockets_open'), 0)).toBe(0);
    expect(await until(() => gauge('portcullis_in_flight_requests'), inFlightBefore)).toBe(inFlightBefore);
  });

  it('releases the request (slot, in-flight gauge, open tunnels) when the tunnel closes', async () => {
    const inFlightBefore = await gauge('portcullis_in_flight_requests');
    const { ws } = await open('/ws/slot', { 'x-api-key': KEY });
    await nextMessage(ws!);
    expect(await gauge('portcullis_in_flight_requests')).toBe(inFlightBefore + 1);
    ws!.close();
    await new Promise((resolve) => ws!.once('close', resolve));
    expect(await until(() => gauge('portcullis_in_flight_requests'), inFlightBefore)).toBe(inFlightBefore);
    expect(await until(() => gauge('portcullis_websockets_open'), 0)).toBe(0);
  });

  it('relays a 426 from the upstream and opens no tunnel', async () => {
    const r = await open('/refuse/x');
    expect(r.ws).toBeUndefined();
    expect(r.status).toBe(426);
    expect(r.body).toBe('not here\r\n');
    expect(await gauge('portcullis_websockets_open')).toBe(0);
  });

  it('refuses Upgrade: h2c with 400', async () => {
    const port = Number(new URL(app.proxyUrl).port);
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let buf = '';
      s.on('data', (d: Buffer) => (buf += d.toString()));
      s.on('close', () => resolve(buf));
      s.on('error', () => resolve(buf));
      s.write('GET /refuse/x HTTP/1.1\r\nhost: a\r\nconnection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\nhttp2-settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n');
      setTimeout(() => s.destroy(), 2_000);
    });
    expect(out.startsWith('HTTP/1.1 400')).toBe(true);
    expect(out).toContain('"code":"BAD_REQUEST"');
  });
});
