// maxBodySize and Expect: 100-continue on real sockets.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';

let upstream: Server;
const received: { url: string; bytes: number }[] = [];
let app: App;
let port: number;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    let bytes = 0;
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      received.push({ url: req.url ?? '', bytes });
      res.end(`got ${bytes}`);
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-body-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" }
authentication: { apiKeys: {} }
routes:
  - { name: small, match: { path: "/small/**" }, public: true, maxBodySize: 1kb }
  - { name: private, match: { path: "/private/**" } }
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
  port = Number(new URL(app.proxyUrl).port);
});

afterAll(async () => {
  await app?.shutdown();
  upstream.closeAllConnections();
  await new Promise<void>((r) => upstream.close(() => r()));
});

/** Sends raw bytes, returns everything the proxy wrote until it closed or `ms` passed. */
function raw(head: string, waitMs = 400): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (d: Buffer) => (out += d.toString('latin1')));
    s.on('error', () => undefined);
    s.write(head);
    setTimeout(() => {
      s.destroy();
      resolve(out);
    }, waitMs);
  });
}

describe('maxBodySize', () => {
  it('refuses a declared Content-Length over the limit without forwarding', async () => {
    const before = received.length;
    const res = await request(`${app.proxyUrl}/small/declared`, { method: 'POST', body: 'x'.repeat(2048) });
    const body = (await res.body.json()) as { code: string };
    expect(res.statusCode).toBe(413);
    expect(body.code).toBe('BODY_TOO_LARGE');
    expect(received.length).toBe(before);
  });

  it('refuses a chunked body once the streamed count passes the limit', async () => {
    const chunks = Array.from({ length: 8 }, () => Buffer.alloc(512, 0x61));
    const res = await request(`${app.proxyUrl}/small/chunked`, { method: 'POST', body: Readable.from(chunks) });
    const body = (await res.body.json()) as { code: string };
    expect(res.statusCode).toBe(413);
    expect(body.code).toBe('BODY_TOO_LARGE');
    expect(received.find((r) => r.url === '/small/chunked')).toBeUndefined();
  });

  it('forwards a chunked body within the limit whole', async () => {
    const res = await request(`${app.proxyUrl}/small/fits`, { method: 'POST', body: Readable.from([Buffer.alloc(600), Buffer.alloc(400)]) });
    expect(res.statusCode).toBe(200);
    expect(await res.body.text()).toBe('got 1000');
  });
});

describe('Expect: 100-continue', () => {
  it('answers a denied request with 401 and no 100, without reading the body', async () => {
    const out = await raw('POST /private/x HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n');
    expect(out.startsWith('HTTP/1.1 401')).toBe(true);
    expect(out).not.toContain('100 Continue');
  });

  it('answers a too-large declared body with 413 and no 100', async () => {
    const out = await raw('POST /small/x HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 4096\r\n\r\n');
    // The status line says what the problem body's title says (RFC 9110 renamed 413).
    expect(out.startsWith('HTTP/1.1 413 Content Too Large\r\n')).toBe(true);
    expect(out).toContain('"title":"Content Too Large"');
    expect(out).not.toContain('100 Continue');
  });

  it('sends 100 once the request passed every stage, then forwards the body', async () => {
    const out = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      let buf = '';
      let sent = false;
      s.on('data', (d: Buffer) => {
        buf += d.toString('latin1');
        if (buf.startsWith('HTTP/1.1 100') && !sent) {
          sent = true;
          s.write('hello');
        }
        if (buf.includes('got 5')) {
          s.destroy();
          resolve(buf);
        }
      });
      s.write('POST /small/continue HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 5\r\nconnection: close\r\n\r\n');
      setTimeout(() => {
        s.destroy();
        resolve(buf);
      }, 2_000);
    });
    expect(out.startsWith('HTTP/1.1 100 Continue'), JSON.stringify(out)).toBe(true);
    expect(out, JSON.stringify(out)).toContain('HTTP/1.1 200');
    expect(out).toContain('HTTP/1.1 200');
    expect(out).toContain('got 5');
  });
});
