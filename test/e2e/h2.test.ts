// HTTP/2 through the built CLI: `serve` with PORTCULLIS_H2C=1 takes h2c with prior knowledge beside
// HTTP/1.1, and an upstream with `protocol: h2` is reached over TLS by ALPN (certificates made here
// with openssl, the CA trusted through NODE_EXTRA_CA_CERTS); `protocol: h2c` reaches a cleartext
// HTTP/2 server. Without `--h2c` the preface is an HTTP/1.1 parse error, as before.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createSecureServer, createServer, type Http2SecureServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Serving, serveCli } from '../helpers/cli.js';

const run = promisify(execFile);
let dir: string;
let tlsUpstream: Http2SecureServer;
let clearUpstream: Http2Server;
const running: Serving[] = [];
const seen: string[] = [];

function answer(name: string) {
  return (req: Http2ServerRequest, res: Http2ServerResponse): void => {
    seen.push(`${name} ${req.httpVersion} ${req.url}`);
    res.end(`${name} answered over HTTP/${req.httpVersion}`);
  };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'pcs-e2e-h2-'));
  const ssl = (args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'up.key', '-out', 'up.csr']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl(['x509', '-req', '-in', 'up.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'up.crt']);
  tlsUpstream = createSecureServer({ key: readFileSync(join(dir, 'up.key')), cert: readFileSync(join(dir, 'up.crt')) }, answer('tls'));
  clearUpstream = createServer(answer('clear'));
  await new Promise<void>((r) => tlsUpstream.listen(0, '127.0.0.1', r));
  await new Promise<void>((r) => clearUpstream.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  tlsUpstream?.close();
  clearUpstream?.close();
});

async function serve(env: Record<string, string>): Promise<Serving> {
  const policy = join(dir, `policy-${running.length}.yaml`);
  writeFileSync(
    policy,
    `version: 1
upstreams:
  secure: { url: "https://127.0.0.1:${(tlsUpstream.address() as AddressInfo).port}", protocol: h2 }
  clear: { url: "http://127.0.0.1:${(clearUpstream.address() as AddressInfo).port}", protocol: h2c }
routes:
  - { name: secure, match: { path: "/secure/**" }, public: true, upstream: secure }
  - { name: clear, match: { path: "/clear/**" }, public: true, upstream: clear }
`,
  );
  const s = await serveCli(policy, { NODE_EXTRA_CA_CERTS: join(dir, 'ca.crt'), ...env });
  running.push(s);
  return s;
}

const curl = async (args: string[]): Promise<string> => (await run('curl', ['-s', '-o', '-', '-w', '\n%{http_version} %{http_code}', ...args])).stdout;

describe('serve with PORTCULLIS_H2C=1', () => {
  it('serves h2c clients and reaches an h2 upstream over TLS by ALPN', async () => {
    const s = await serve({ PORTCULLIS_H2C: '1' });
    expect(await curl(['--http2-prior-knowledge', `${s.proxy}/secure/a`])).toBe('tls answered over HTTP/2.0\n2 200');
    expect(seen).toContain('tls 2.0 /secure/a');
  });

  it('serves HTTP/1.1 clients on the same listener and reaches an h2c upstream', async () => {
    const s = running[0] ?? (await serve({ PORTCULLIS_H2C: '1' }));
    expect(await curl(['--http1.1', `${s.proxy}/clear/b`])).toBe('clear answered over HTTP/2.0\n1.1 200');
    expect(seen).toContain('clear 2.0 /clear/b');
  });
});

describe('serve with --tls-cert and --tls-key', () => {
  it('serves HTTP/2 to clients that choose h2 by ALPN, and HTTP/1.1 to the others', async () => {
    const s = await serve({ PORTCULLIS_TLS_CERT: join(dir, 'up.crt'), PORTCULLIS_TLS_KEY: join(dir, 'up.key') });
    const url = s.proxy.replace('http://', 'https://');
    expect(await curl(['--cacert', join(dir, 'ca.crt'), '--http2', `${url}/clear/tls-h2`])).toBe('clear answered over HTTP/2.0\n2 200');
    expect(await curl(['--cacert', join(dir, 'ca.crt'), '--http1.1', `${url}/clear/tls-h1`])).toBe('clear answered over HTTP/2.0\n1.1 200');
  });
});

describe('serve without --h2c', () => {
  it('does not speak HTTP/2 on the cleartext listener', async () => {
    const s = await serve({});
    const out = await curl(['--http2-prior-knowledge', `${s.proxy}/clear/c`]).catch((e: { stdout?: string }) => e.stdout ?? '');
    expect(out).not.toContain('answered');
    // HTTP/1.1 is served as before.
    expect(await curl([`${s.proxy}/clear/d`])).toBe('clear answered over HTTP/2.0\n1.1 200');
  });
});
