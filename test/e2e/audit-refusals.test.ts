// Every request leaves one audit event that says what was attempted, through the built CLI with a
// chained file sink: a request the HTTP parser refuses (bad target, CR in a header, oversized
// head, ambiguous framing, no Host) and one the canonicaliser refuses are each recorded once, with
// the target as sent (bounded) and the peer's address; no raw control or bidi character ever lands
// in the file, and the chain still verifies.

import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type Serving, serveCli } from '../helpers/cli.js';

let upstream: Server;
let serving: Serving;
let auditFile: string;

beforeAll(async () => {
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-refusals-'));
  auditFile = join(dir, 'audit.ndjson');
  const policy = join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  chain: true
  sinks:
    - file: { path: ${JSON.stringify(auditFile)} }
`,
  );
  serving = await serveCli(policy);
});

afterAll(async () => {
  await serving?.stop();
  upstream?.closeAllConnections();
  await new Promise<void>((r) => upstream?.close(() => r()));
});

/** Writes raw bytes on a fresh connection; resolves with the first response once it is whole (or the connection closed). */
function send(bytes: Buffer): Promise<string> {
  const { port } = new URL(serving.proxy);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => s.write(bytes));
    let out = '';
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      resolve(out);
    };
    const timer = setTimeout(done, 5_000);
    s.on('data', (d) => {
      out += d.toString('latin1');
      const end = out.indexOf('\r\n\r\n');
      const length = /content-length: (\d+)/i.exec(out)?.[1];
      if (end > 0 && length !== undefined && out.length >= end + 4 + Number(length)) done();
    });
    s.on('close', done);
    s.on('error', reject);
  });
}

type Event = { request: { method: string; path: string; ip: string; route: string | null }; decision: { allowed: boolean; code: string | null }; response: { status: number } };

function events(): Event[] {
  if (!existsSync(auditFile)) return [];
  return readFileSync(auditFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"type":"request"'))
    .map((l) => JSON.parse(l) as Event);
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const LONG = `/long%2F${'p'.repeat(5000)}`;

// name → [bytes, status, code, method, path (as recorded, after JSON parsing), query suffix]
const REFUSED: [string, Buffer, number, string, string, string][] = [
  ['a DEL byte in the target', latin1('GET /del\x7fx?a=1 HTTP/1.1\r\nHost: x\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/del\x7fx?a=1'],
  ['a C1 byte in the target', latin1('GET /c1\x9bx HTTP/1.1\r\nHost: x\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/c1\x9bx'],
  ['a bare CR in a header value', latin1('GET /cr HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/cr'],
  ['an oversized head', latin1(`GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`), 431, 'HEADERS_TOO_LARGE', 'GET', '/big'],
  ['Transfer-Encoding beside Content-Length', latin1('POST /te-cl HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n'), 400, 'BAD_REQUEST', 'POST', '/te-cl'],
  ['a coding list other than chunked', latin1('POST /te-list HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n'), 400, 'BAD_REQUEST', 'POST', '/te-list'],
  ['a missing Host', latin1('GET /no-host HTTP/1.1\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/no-host'],
  ['an Expect other than 100-continue', latin1('GET /expect HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/expect'],
  ['an encoded slash (the canonicaliser)', latin1('GET /enc%2Fslash?token=hunter2&x=1 HTTP/1.1\r\nHost: x\r\n\r\n'), 400, 'BAD_REQUEST', 'GET', '/enc%2Fslash?token=[REDACTED]&x=1'],
  ['a very long refused target', latin1(`GET ${LONG} HTTP/1.1\r\nHost: x\r\n\r\n`), 400, 'BAD_REQUEST', 'GET', `${LONG.slice(0, 2048)}…`],
];

describe('the audit trail of refused requests', () => {
  it('has exactly one event per refused request, with its code, the attempted method and target, and the peer', async () => {
    for (const [name, bytes, status] of REFUSED) {
      const text = await send(bytes);
      expect(text, name).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(text, name).toContain('application/problem+json');
    }
    // A request pipelined behind a refused one is never read, so it leaves no event either.
    await send(latin1('GET /bad\x01 HTTP/1.1\r\nHost: x\r\n\r\nGET /never-read HTTP/1.1\r\nHost: x\r\n\r\n'));
    const until = Date.now() + 10_000;
    while (events().length < REFUSED.length + 1 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const all = events();
    for (const [name, , status, code, method, target] of REFUSED) {
      const mine = all.filter((e) => `${e.request.path}` === target);
      expect(mine, `${name}: ${JSON.stringify(all.map((e) => e.request.path.slice(0, 40)))}`).toHaveLength(1);
      expect(mine[0]!.decision).toEqual(expect.objectContaining({ allowed: false, code }));
      expect(mine[0]!.request).toEqual(expect.objectContaining({ method, ip: '127.0.0.1', route: null }));
      expect(mine[0]!.response.status).toBe(status);
    }
    expect(all.filter((e) => e.request.path.startsWith('/bad'))).toHaveLength(1);
    expect(all.some((e) => e.request.path === '/never-read')).toBe(false);
  });

  it('never writes a raw control or bidi character, and the chain still verifies', async () => {
    // Allowed: the canonical path decodes to U+202E RIGHT-TO-LEFT OVERRIDE and U+2066 LEFT-TO-RIGHT ISOLATE.
    const res = await fetch(`${serving.proxy}/files/%E2%80%AEgpj.exe%E2%81%A6`);
    expect(res.status).toBe(200);
    await res.text();
    const until = Date.now() + 10_000;
    while (!events().some((e) => e.request.path.startsWith('/files/')) && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
    const event = events().find((e) => e.request.path.startsWith('/files/'))!;
    expect(event.request.path).toBe('/files/\u202egpj.exe\u2066');
    const raw = readFileSync(auditFile, 'utf8');
    expect(raw).toContain('\\u202e');
    expect(raw).toContain('\\u007f');
    expect(raw).toContain('\\u009b');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the test looks for raw control characters
    expect(raw.match(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g)).toBeNull();
    const verify = await runCli(['audit', 'verify', auditFile]);
    expect(verify.stdout + verify.stderr).toMatch(/chain intact/);
    expect(verify.code).toBe(0);
  });
});
