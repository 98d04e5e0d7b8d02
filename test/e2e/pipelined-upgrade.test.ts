// One packet must never stop the gateway: a WebSocket upgrade pipelined behind another request (in
// the same write, or while that request's response is still being produced) is answered after
// that response, on the built CLI, and the process goes on serving.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { type Serving, serveCli } from '../helpers/cli.js';

let upstream: Server;
let wss: WebSocketServer;
let serving: Serving;

const UPGRADE = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`;
const GET = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const delay = req.url?.startsWith('/slow') ? 600 : 0;
    setTimeout(() => res.end(`answer:${req.url}`), delay);
  });
  wss = new WebSocketServer({ server: upstream });
  wss.on('connection', (ws) => {
    ws.on('error', () => undefined); // bytes pipelined after an upgrade reach it as (invalid) frames
    ws.send('hello from upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-pipelined-upgrade-'));
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`,
  );
  serving = await serveCli(policy);
});

afterAll(async () => {
  await serving?.stop();
  wss?.close();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

/**
 * Writes `parts` on one connection (each after `gapMs`), collects what comes back until the
 * connection closes or `until` matches the text so far.
 */
function exchange(parts: string[], until: RegExp, gapMs = 0): Promise<string> {
  const { port } = new URL(serving.proxy);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', async () => {
      for (const p of parts) {
        s.write(p);
        if (gapMs > 0) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
    let out = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, 10_000);
    s.on('data', (d) => {
      out += d.toString('latin1');
      if (until.test(out)) done();
    });
    s.on('close', done);
    s.on('error', reject);
  });
}

async function stillServing(): Promise<void> {
  const res = await fetch(`${serving.proxy}/alive`);
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('answer:/alive');
  expect(serving.stderr()).not.toMatch(/ERR_HTTP_SOCKET_ASSIGNED|uncaught|exited/i);
}

describe('a WebSocket upgrade pipelined behind another request', () => {
  it('is answered after the earlier response when both arrive in one packet, and the tunnel opens', async () => {
    const text = await exchange([GET('/healthz') + UPGRADE('/ws')], /hello from upstream/);
    const first = text.indexOf('HTTP/1.1 200');
    const second = text.indexOf('HTTP/1.1 101');
    expect(first).toBe(0);
    expect(text).toContain('answer:/healthz');
    expect(second).toBeGreaterThan(first);
    expect(text.slice(second)).toContain('hello from upstream');
    await stillServing();
  });

  it('waits for a slow response still being produced on the same connection before switching protocols', async () => {
    const text = await exchange([GET('/slow/1'), UPGRADE('/ws')], /hello from upstream/, 100);
    expect(text.indexOf('answer:/slow/1')).toBeGreaterThan(0);
    expect(text.indexOf('HTTP/1.1 101')).toBeGreaterThan(text.indexOf('answer:/slow/1'));
    expect(text).toContain('hello from upstream');
    await stillServing();
  });

  it('answers several pipelined requests in order before the upgrade behind them', async () => {
    const text = await exchange([GET('/slow/a') + GET('/b') + GET('/slow/c') + UPGRADE('/ws')], /hello from upstream/);
    const order = ['answer:/slow/a', 'answer:/b', 'answer:/slow/c', 'HTTP/1.1 101', 'hello from upstream'].map((m) => text.indexOf(m));
    for (const i of order) expect(i).toBeGreaterThanOrEqual(0);
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    await stillServing();
  });

  it('survives a burst of pipelined and interleaved upgrades on many connections', async () => {
    const shapes = [
      [GET('/healthz') + UPGRADE('/ws')],
      [UPGRADE('/ws') + GET('/after-upgrade')],
      [GET('/slow/x') + UPGRADE('/ws') + UPGRADE('/ws')],
      [GET('/a') + GET('/b') + UPGRADE('/ws')],
      [`POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc${UPGRADE('/ws')}`],
    ];
    await Promise.all(Array.from({ length: 40 }, (_, i) => exchange(shapes[i % shapes.length]!, /hello from upstream/)));
    // A connection closed mid-wait: the client goes away while the upgrade waits for the earlier response.
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        const { port } = new URL(serving.proxy);
        const s = connect(Number(port), '127.0.0.1', () => s.write(GET('/slow/gone') + UPGRADE('/ws')));
        s.on('error', () => undefined);
        await new Promise((r) => setTimeout(r, 50));
        s.destroy();
      }),
    );
    await new Promise((r) => setTimeout(r, 800));
    await stillServing();
  });
});
