// TLS towards what Portcullis depends on, with the built CLI: an https upstream and a `rediss://`
// limits store whose certificates a private CA signed. The CA is trusted the Node way, through
// NODE_EXTRA_CA_CERTS; without it the certificate is refused (verification is never switched off).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { root, type Serving, serveCli } from '../helpers/cli.js';
import { freePort } from '../helpers/redis.js';

const FIXTURES = path.join(root, 'test/fixtures/tls');
const CA = path.join(FIXTURES, 'ca.crt');
const cert = readFileSync(path.join(FIXTURES, 'server.crt'));
const key = readFileSync(path.join(FIXTURES, 'server.key'));

let dir: string;
let upstream: Server;
let upstreamHits = 0;
const running: Serving[] = [];

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-tls-'));
  upstream = createServer({ cert, key }, (req, res) => {
    upstreamHits++;
    res.end(`secure hello ${req.url}`);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await new Promise((r) => upstream?.close(r));
});

async function serve(policyText: string, trustCa: boolean): Promise<Serving> {
  const policy = path.join(dir, `policy-${running.length}.yaml`);
  writeFileSync(policy, policyText);
  const s = await serveCli(policy, trustCa ? { NODE_EXTRA_CA_CERTS: CA } : {}, trustCa ? [] : ['NODE_EXTRA_CA_CERTS']);
  running.push(s);
  return s;
}

const httpsPolicy = () => `version: 1
upstreams: { app: { url: "https://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`;

describe('an https upstream', () => {
  it('is served when its CA is trusted through NODE_EXTRA_CA_CERTS', async () => {
    const s = await serve(httpsPolicy(), true);
    const r = await fetch(`${s.proxy}/hello`);
    expect(r.status).toBe(200);
    expect(await r.text()).toBe('secure hello /hello');
  });

  it('is refused with 502 UPSTREAM_ERROR when its certificate is not trusted, and nothing reaches it', async () => {
    const s = await serve(httpsPolicy(), false);
    const before = upstreamHits;
    const r = await fetch(`${s.proxy}/hello`);
    expect(r.status).toBe(502);
    expect(((await r.json()) as { code: string }).code).toBe('UPSTREAM_ERROR');
    expect(upstreamHits).toBe(before);
  });
});

describe('a rediss:// limits store', () => {
  let redis: ChildProcess | undefined;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    const bin = inject('redisServerBin');
    if (!bin) throw new Error('redis-server is not installed: sudo apt-get install -y redis-server');
    const certs = ['--tls-cert-file', path.join(FIXTURES, 'server.crt'), '--tls-key-file', path.join(FIXTURES, 'server.key'), '--tls-ca-cert-file', CA];
    redis = spawn(bin, ['--port', '0', '--tls-port', String(port), ...certs, '--tls-auth-clients', 'no', '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
    const ca = readFileSync(CA);
    const until = Date.now() + 10_000;
    for (;;) {
      const pong = await new Promise<boolean>((resolve) => {
        const s = tls.connect({ host: '127.0.0.1', port, ca }, () => s.write('PING\r\n'));
        s.on('data', (d) => {
          s.destroy();
          resolve(d.toString().startsWith('+PONG'));
        });
        s.on('error', () => resolve(false));
      });
      if (pong) break;
      if (Date.now() > until) throw new Error('redis-server with TLS did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(() => {
    redis?.kill('SIGKILL');
  });

  it('enforces a route bucket over TLS: the burst passes, the next request is 429', async () => {
    const upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
    const s = await serve(
      `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
store: { url: "rediss://127.0.0.1:${port}", onError: deny, timeout: 1s }
routes:
  - name: open
    match: { path: "/**" }
    public: true
    limits: [{ by: ip, rate: 1/m, burst: 3 }]
`,
      true,
    );
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${s.proxy}/limited/${i}`);
      await r.arrayBuffer();
      statuses.push(r.status);
    }
    // onError: deny, so a store that could not be reached would have refused all five instead.
    expect(statuses).toEqual([200, 200, 200, 429, 429]);
  });
});
