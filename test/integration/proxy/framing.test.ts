// Request framing is unambiguous or refused (RFC 9112 §6): whatever Transfer-Encoding form a
// proxy and its upstream could read differently is answered 400 BAD_REQUEST and the connection
// closed; nothing reaches the upstream and a request pipelined behind it is never answered. Some
// forms llhttp refuses itself and some it lets through (which differ between Node 20 and 24): the
// test sends them all and expects the same answer.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';

let upstream: Server;
const upstreamSaw: string[] = [];
let app: App;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    upstreamSaw.push(`${req.method} ${req.url}`);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-framing-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
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
});

afterAll(async () => {
  await app?.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

/** Writes `text` in one packet; resolves with everything received once the server closes the connection. */
function send(text: string): Promise<{ text: string; closedByServer: boolean }> {
  const { port } = new URL(app.proxyUrl);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(text));
    let out = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ text: out, closedByServer: false });
    }, 3_000);
    s.on('data', (d) => (out += d.toString()));
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ text: out, closedByServer: true });
    });
    s.on('error', reject);
  });
}

const SECOND = 'GET /second HTTP/1.1\r\nHost: x\r\n\r\n';
const head = (lines: string, version = '1.1') => `POST /first HTTP/${version}\r\nHost: x\r\n${lines}\r\n`;

const AMBIGUOUS: Record<string, string> = {
  'two Transfer-Encoding lines': `${head('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n`,
  'a coding list ending in chunked': `${head('Transfer-Encoding: gzip, chunked\r\n')}0\r\n\r\n`,
  'chunked twice in one line': `${head('Transfer-Encoding: chunked, chunked\r\n')}0\r\n\r\n`,
  identity: head('Transfer-Encoding: identity\r\n'),
  'an empty Transfer-Encoding': head('Transfer-Encoding: \r\n'),
  'gzip and chunked on separate lines': `${head('Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n`,
  'Transfer-Encoding with Content-Length': `${head('Transfer-Encoding: chunked\r\nContent-Length: 5\r\n')}0\r\n\r\n`,
  'Content-Length with Transfer-Encoding': `${head('Content-Length: 5\r\nTransfer-Encoding: chunked\r\n')}0\r\n\r\n`,
  'Transfer-Encoding on HTTP/1.0': `${head('Transfer-Encoding: chunked\r\n', '1.0')}0\r\n\r\n`,
  'Transfer-Encoding on HTTP/1.0 with keep-alive': `${head('Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n', '1.0')}0\r\n\r\n`,
};

describe('request framing', () => {
  for (const [name, first] of Object.entries(AMBIGUOUS)) {
    it(`refuses ${name} with 400, closes the connection, forwards nothing and never answers the request behind it`, async () => {
      upstreamSaw.length = 0;
      const r = await send(first + SECOND);
      expect(r.text).toMatch(/^HTTP\/1\.1 400 /);
      expect(r.text).toContain('application/problem+json');
      expect(r.text).toContain('"code":"BAD_REQUEST"');
      expect(r.text.match(/HTTP\/1\.1 \d{3}/g)).toHaveLength(1);
      expect(r.closedByServer).toBe(true);
      expect(upstreamSaw).toEqual([]);
    });
  }

  it('forwards one Transfer-Encoding: chunked line (any case) and serves the request behind it', async () => {
    upstreamSaw.length = 0;
    const r = await send(`${head('Transfer-Encoding: Chunked\r\n')}3\r\nabc\r\n0\r\n\r\n${SECOND.replace('\r\n\r\n', '\r\nConnection: close\r\n\r\n')}`);
    expect(r.text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);
    expect(upstreamSaw).toEqual(['POST /first', 'GET /second']);
  });
});
