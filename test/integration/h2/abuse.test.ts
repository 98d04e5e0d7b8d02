// HTTP/2's own abuse cases, written as raw frames on a socket so that no client library smooths
// them over: malformed pseudo-headers, a header list over the limit, a CONTINUATION flood and a
// rapid-reset flood (CVE-2023-44487). Each is refused or ends its session without hanging, other
// clients keep being served, and nothing is left behind: no request in flight, no concurrency slot.

import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { inFlight } from '../../../src/observability/metrics.js';
import { redisUrl } from '../../helpers/redis.js';

let upstream: Server;
let app: App;
let upstreamHits = 0;
const run = Date.now().toString(36);

beforeAll(async () => {
  // A roomy upstream: only the gateway's own header-list limit can stop the oversized request.
  upstream = createServer({ maxHeaderSize: 256 * 1024 }, (req, res) => {
    upstreamHits++;
    req.resume();
    // Slow answers keep each allowed stream (and its concurrency slot) busy for a while.
    const delay = req.url?.startsWith('/slow/') ? 100 : 0;
    setTimeout(() => res.end('ok'), delay);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'pcs-h2-abuse-'));
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}", breaker: { consecutiveFailures: 3 } } }
store: { url: "${redisUrl()}", prefix: "h2abuse:${run}:" }
authentication:
  apiKeys: { keys: [{ id: one, hash: "${hashApiKey('one-key')}", tenant: solo, roles: [user] }] }
roles: { user: { permissions: ["api:use"] } }
tenants:
  tiers: { single: { concurrency: 1 } }
  members: { solo: single }
routes:
  - { name: open, match: { path: "/open/**" }, public: true }
  - { name: slow, match: { path: "/slow/**" }, require: ["api:use"] }
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
    logger: createLogger({ level: 'silent' }),
  });
});

afterAll(async () => {
  await app?.shutdown();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

// --- frames (RFC 9113 §4) and HPACK literals without indexing (RFC 7541 §6.2.2) ---

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HEADERS = 1;
const RST_STREAM = 3;
const SETTINGS = 4;
const GOAWAY = 7;
const CONTINUATION = 9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream, 5);
  return Buffer.concat([head, payload]);
}

function hpackInt(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

function block(headers: readonly (readonly [string, string])[]): Buffer {
  const parts: Buffer[] = [];
  for (const [name, value] of headers) {
    parts.push(Buffer.from([0x00, ...hpackInt(name.length, 7, 0)]), Buffer.from(name, 'latin1'));
    parts.push(Buffer.from(hpackInt(value.length, 7, 0)), Buffer.from(value, 'latin1'));
  }
  return Buffer.concat(parts);
}

const request = (path: string, extra: readonly (readonly [string, string])[] = []): [string, string][] => [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':authority', 'gateway.test'],
  [':path', path],
  ...extra.map(([n, v]): [string, string] => [n, v]),
];

interface Seen {
  readonly types: number[];
  /** RST_STREAM error codes by stream. */
  readonly resets: Map<number, number>;
  /** Response HEADERS by stream. */
  readonly answered: Set<number>;
  closed: boolean;
}

/** Opens a raw h2c connection and parses the frame types the server sends back. */
function rawSession(): Promise<{ socket: Socket; seen: Seen }> {
  const url = new URL(app.proxyUrl);
  return new Promise((resolve, reject) => {
    const seen: Seen = { types: [], resets: new Map(), answered: new Set(), closed: false };
    const socket = connect(Number(url.port), url.hostname, () => {
      socket.write(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0)]));
      resolve({ socket, seen });
    });
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const type = buf[3]!;
        const stream = buf.readUInt32BE(5) & 0x7fffffff;
        seen.types.push(type);
        if (type === RST_STREAM) seen.resets.set(stream, buf.readUInt32BE(9));
        if (type === HEADERS) seen.answered.add(stream);
        buf = buf.subarray(9 + len);
      }
    });
    socket.on('close', () => (seen.closed = true));
    socket.on('error', () => undefined);
    socket.once('error', reject);
  });
}

async function until(cond: () => boolean, ms = 5_000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
}

/** A well-behaved HTTP/2 client on its own session. */
async function ok(path: string, headers: Record<string, string> = {}): Promise<number> {
  const session = h2connect(app.proxyUrl);
  try {
    return await new Promise<number>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':path': path, ...headers });
      req.on('response', (h) => resolve(Number(h[':status'])));
      req.on('error', reject);
      req.resume();
    });
  } finally {
    session.close();
  }
}

describe('pseudo-header validation', () => {
  const malformed: [string, [string, string][]][] = [
    ['an unknown pseudo-header', [...request('/open/a'), [':bogus', 'x']]],
    [
      'a pseudo-header after a regular header',
      [
        [':method', 'GET'],
        [':scheme', 'http'],
        ['x-a', '1'],
        [':path', '/open/a'],
      ],
    ],
    [
      'no :path',
      [
        [':method', 'GET'],
        [':scheme', 'http'],
        [':authority', 'gateway.test'],
      ],
    ],
    ['an upper-case header name', [...request('/open/a'), ['X-Upper', '1']]],
    ['a connection-specific header', [...request('/open/a'), ['connection', 'keep-alive']]],
    ['a duplicate :path', [...request('/open/a'), [':path', '/open/b']]],
  ];
  for (const [what, headers] of malformed) {
    it(`resets a stream with ${what} and never forwards it`, async () => {
      const before = upstreamHits;
      const { socket, seen } = await rawSession();
      socket.write(frame(HEADERS, END_STREAM | END_HEADERS, 1, block(headers)));
      expect(await until(() => seen.resets.has(1) || seen.types.includes(GOAWAY) || seen.closed)).toBe(true);
      expect(seen.answered.has(1)).toBe(false);
      socket.destroy();
      expect(upstreamHits).toBe(before);
    });
  }

  it('answers a well-formed raw request on the same kind of session', async () => {
    const { socket, seen } = await rawSession();
    socket.write(frame(HEADERS, END_STREAM | END_HEADERS, 1, block(request('/open/fine'))));
    expect(await until(() => seen.answered.has(1))).toBe(true);
    socket.destroy();
  });
});

describe('header-list size and CONTINUATION floods', () => {
  it('refuses a header list over 16 KiB without forwarding it', async () => {
    const before = upstreamHits;
    const { socket, seen } = await rawSession();
    const big = block(request('/open/big', [['x-big', 'b'.repeat(20_000)]]));
    // Over the 16 KiB frame size: the block goes out as HEADERS + CONTINUATION frames.
    const chunks: Buffer[] = [];
    for (let i = 0; i < big.length; i += 16_000) chunks.push(big.subarray(i, i + 16_000));
    const frames = chunks.map((c, i) => (i === 0 ? frame(HEADERS, END_STREAM | (chunks.length === 1 ? END_HEADERS : 0), 1, c) : frame(CONTINUATION, i === chunks.length - 1 ? END_HEADERS : 0, 1, c)));
    socket.write(Buffer.concat(frames));
    // Answered (431 HEADERS_TOO_LARGE, like an HTTP/1.1 head over 16 KiB), never forwarded.
    expect(await until(() => seen.answered.has(1))).toBe(true);
    expect(upstreamHits).toBe(before);
    socket.destroy();
  });

  it('ends a session flooded with CONTINUATION frames instead of buffering them, and keeps serving others', async () => {
    const { socket, seen } = await rawSession();
    const frames: Buffer[] = [frame(HEADERS, 0, 1, block(request('/open/flood')))];
    // Empty and tiny fragments that never end the header block (CVE-2024-27316 class).
    for (let i = 0; i < 20_000; i++) frames.push(frame(CONTINUATION, 0, 1, block([['x', 'y']])));
    socket.write(Buffer.concat(frames));
    expect(await until(() => seen.types.includes(GOAWAY) || seen.closed, 10_000)).toBe(true);
    socket.destroy();
    expect(await ok('/open/after-continuation')).toBe(200);
  });
});

describe('rapid reset (CVE-2023-44487)', () => {
  it('does not stall other clients and leaves no request, slot or lease behind', async () => {
    const { socket, seen } = await rawSession();
    const frames: Buffer[] = [];
    const hdr = block(request('/slow/x', [['x-api-key', 'one-key']]));
    // Thousands of streams, each opened and cancelled at once.
    for (let i = 0; i < 5_000; i++) {
      const id = 1 + 2 * i;
      frames.push(frame(HEADERS, END_STREAM | END_HEADERS, id, hdr), frame(RST_STREAM, 0, id, Buffer.from([0, 0, 0, 8])));
    }
    socket.write(Buffer.concat(frames));
    // Meanwhile another client is served.
    expect(await ok('/open/during-reset')).toBe(200);
    await until(() => seen.types.includes(GOAWAY) || seen.closed, 5_000);
    socket.destroy();
    // Every stream of the flood settled.
    expect(await until(() => inFlight.n === 0, 15_000)).toBe(true);
    // The tenant's single concurrency slot is free again: no lease was left behind by a reset stream.
    expect(await ok('/slow/after', { 'x-api-key': 'one-key' })).toBe(200);
  });
});
