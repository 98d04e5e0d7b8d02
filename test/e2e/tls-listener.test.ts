// TLS on the proxy and admin listeners, with the built CLI: the handshake and ALPN, the protocol
// floor, and certificate rotation (a keep-alive connection opened before it keeps working, new
// connections see the new certificate, a bad new pair keeps the old one and is counted).
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:https';
import net from 'node:net';
import path from 'node:path';
import tls, { type PeerCertificate } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki, type Pki, SERVER_SAN } from '../helpers/certs.js';
import { MAIN, root, type Serving, serveCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { type OkUpstream, okUpstream } from '../helpers/upstream.js';

let pki: Pki;
let upstream: OkUpstream;
const running: Serving[] = [];

beforeAll(async () => {
  pki = createPki('listener');
  upstream = await okUpstream();
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  await upstream?.close();
});

function policyFile(name: string): string {
  const file = path.join(pki.dir, `${name}.yaml`);
  writeFileSync(file, `version: 1\nupstreams:\n  app: { url: "${upstream.url}" }\nroutes:\n  - { name: open, match: { path: "/**" }, public: true, upstream: app }\n`);
  return file;
}

async function serve(name: string, args: readonly string[]): Promise<Serving> {
  const s = await serveCli(policyFile(name), {}, [], { args });
  running.push(s);
  return s;
}

/** One TLS connection; resolves once the handshake is done (or rejects with the handshake error). */
function connect(port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: pki.caPem(), servername: 'localhost', ...options }, () => resolve(socket));
    socket.once('error', reject);
  });
}

interface Answer {
  status: number;
  body: string;
  cert: PeerCertificate;
  reused: boolean;
}

function get(port: number, agent: Agent, pathName = '/hello'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: pathName, agent, ca: pki.caPem(), servername: 'localhost' }, (res) => {
      let body = '';
      // Read now: once the body ends the socket goes back to the agent.
      const cert = (res.socket as tls.TLSSocket).getPeerCertificate();
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, cert, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function metric(s: Serving, name: string): Promise<string[]> {
  const text = await (await fetch(`${s.admin}/metrics`)).text();
  return text.split('\n').filter((l) => l.startsWith(name));
}

async function until(what: () => Promise<boolean>, label: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await what())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${label}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('serve --tls-cert/--tls-key', () => {
  it('answers HTTPS with the configured certificate and negotiates h2, then http/1.1, over ALPN', async () => {
    const server = pki.issue('server-a', { cn: 'proxy-a', san: SERVER_SAN });
    const s = await serve('handshake', ['--tls-cert', server.cert, '--tls-key', server.key]);
    const socket = await connect(s.port, { ALPNProtocols: ['h2', 'http/1.1'] });
    // The HTTP/2 door is plugged in: h2 is offered first (test/e2e/h2.test.ts serves requests over it).
    expect(socket.alpnProtocol).toBe('h2');
    const h1 = await connect(s.port, { ALPNProtocols: ['http/1.1'] });
    expect(h1.alpnProtocol).toBe('http/1.1');
    h1.destroy();
    expect(socket.getPeerCertificate().subject.CN).toBe('proxy-a');
    expect(['TLSv1.2', 'TLSv1.3']).toContain(socket.getProtocol());
    socket.destroy();
    const agent = new Agent({ keepAlive: true });
    const r = await get(s.port, agent);
    agent.destroy();
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok');
  });

  it('serves a client that offers no ALPN at all over HTTP/1.1', async () => {
    const server = pki.issue('server-noalpn', { cn: 'proxy-noalpn', san: SERVER_SAN });
    const s = await serve('noalpn', ['--tls-cert', server.cert, '--tls-key', server.key]);
    const socket = await connect(s.port);
    expect(socket.alpnProtocol).toBe(false);
    const head = await new Promise<string>((resolve) => {
      let data = '';
      socket.on('data', (d) => {
        data += d;
        if (data.includes('\r\n\r\n')) resolve(data);
      });
      socket.write('GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n');
    });
    socket.destroy();
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses TLS 1.1 and counts the refused handshake', async () => {
    const server = pki.issue('server-old', { cn: 'proxy-old', san: SERVER_SAN });
    const s = await serve('old', ['--tls-cert', server.cert, '--tls-key', server.key]);
    await expect(connect(s.port, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' })).rejects.toThrow();
    await until(async () => (await metric(s, 'portcullis_tls_handshake_failures_total{listener="proxy"}')).some((l) => !l.endsWith(' 0')), 'the handshake failure count');
    // Still serving modern clients.
    const ok = await connect(s.port);
    ok.destroy();
  });

  it('rotates a Kubernetes-style ..data swap: the open keep-alive connection keeps working, new connections get the new certificate', async () => {
    // A secret volume: tls.crt -> ..data/tls.crt, ..data -> a timestamped directory swapped atomically.
    const mount = path.join(pki.dir, 'secret-volume');
    rmSync(mount, { recursive: true, force: true });
    mkdirSync(mount);
    const v1 = pki.issue('server-v1', { cn: 'proxy-v1', san: SERVER_SAN });
    const v2 = pki.issue('server-v2', { cn: 'proxy-v2', san: SERVER_SAN });
    const version = (name: string, pem: { cert: string; key: string }): string => {
      const d = path.join(mount, name);
      mkdirSync(d);
      copyFileSync(pem.cert, path.join(d, 'tls.crt'));
      copyFileSync(pem.key, path.join(d, 'tls.key'));
      return name;
    };
    symlinkSync(version('..2026_v1', v1), path.join(mount, '..data'));
    symlinkSync('..data/tls.crt', path.join(mount, 'tls.crt'));
    symlinkSync('..data/tls.key', path.join(mount, 'tls.key'));
    const s = await serve('rotate', ['--tls-cert', path.join(mount, 'tls.crt'), '--tls-key', path.join(mount, 'tls.key')]);

    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const before = await get(s.port, agent);
    expect(before.cert.subject.CN).toBe('proxy-v1');

    // What kubelet does: write the new version, point a temporary link at it, rename it over ..data.
    symlinkSync(version('..2026_v2', v2), path.join(mount, '..data_tmp'));
    renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));

    await until(async () => {
      const fresh = await connect(s.port);
      const cn = fresh.getPeerCertificate().subject.CN;
      fresh.destroy();
      return cn === 'proxy-v2';
    }, 'the new certificate on new connections');
    const again = await get(s.port, agent);
    expect(again.status).toBe(200);
    expect(again.reused).toBe(true); // the same connection as before the swap
    expect(again.cert.subject.CN).toBe('proxy-v1');
    agent.destroy();
    expect((await metric(s, 'portcullis_tls_reloads_total{listener="proxy",result="success"}'))[0]).toMatch(/ [1-9]\d*$/);
  });

  it('keeps serving the old certificate when the new key does not belong to the new certificate, and counts the failure', async () => {
    const dir = path.join(pki.dir, 'plain-files');
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir);
    const good = pki.issue('server-good', { cn: 'proxy-good', san: SERVER_SAN });
    const other = pki.issue('server-other', { cn: 'proxy-other', san: SERVER_SAN });
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    copyFileSync(good.cert, cert);
    copyFileSync(good.key, key);
    const s = await serve('badpair', ['--tls-cert', cert, '--tls-key', key]);

    // A new certificate whose key never arrives: the pair does not match.
    writeFileSync(cert, readFileSync(other.cert));
    await until(async () => (await metric(s, 'portcullis_tls_reloads_total{listener="proxy",result="failure"}')).some((l) => / [1-9]\d*$/.test(l)), 'the failed reload count');
    const socket = await connect(s.port);
    expect(socket.getPeerCertificate().subject.CN).toBe('proxy-good');
    socket.destroy();
    // Garbage is refused the same way.
    writeFileSync(key, 'not a key');
    await new Promise((r) => setTimeout(r, 600));
    const still = await connect(s.port);
    expect(still.getPeerCertificate().subject.CN).toBe('proxy-good');
    still.destroy();

    // Once the matching key lands, the new pair is served.
    writeFileSync(key, readFileSync(other.key));
    await until(async () => {
      const fresh = await connect(s.port);
      const cn = fresh.getPeerCertificate().subject.CN;
      fresh.destroy();
      return cn === 'proxy-other';
    }, 'the completed rotation');
  });

  it('stops on SIGTERM without waiting for a client stuck before its handshake', async () => {
    const server = pki.issue('server-stuck', { cn: 'proxy-stuck', san: SERVER_SAN });
    const s = await serve('stuck', ['--tls-cert', server.cert, '--tls-key', server.key]);
    // A TCP connection that never sends a ClientHello: only the 10 s handshake timeout would end it.
    const raw = net.connect(s.port, '127.0.0.1');
    raw.on('error', () => undefined);
    await new Promise((r) => raw.once('connect', r));
    const started = Date.now();
    const exited = new Promise<number | null>((r) => s.child.once('exit', (code) => r(code)));
    s.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(Date.now() - started).toBeLessThan(8_000);
    raw.destroy();
  });

  it('does not start when the key does not belong to the certificate, and says which files', async () => {
    const a = pki.issue('server-x', { cn: 'x', san: SERVER_SAN });
    const b = pki.issue('server-y', { cn: 'y', san: SERVER_SAN });
    await expect(serveCli(policyFile('mismatch'), {}, [], { args: ['--tls-cert', a.cert, '--tls-key', b.key] })).rejects.toThrow(/does not belong to the certificate/);
  });
});

describe('serve --admin-tls-cert/--admin-tls-key', () => {
  it('serves the admin listener over HTTPS with its own certificate', async () => {
    const admin = pki.issue('admin', { cn: 'admin-listener', san: SERVER_SAN });
    const [port, adminPort] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [MAIN, 'serve', '--policy', policyFile('admin'), '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--admin-tls-cert', admin.cert, '--admin-tls-key', admin.key],
      {
        cwd: root,
        env: { ...process.env, LOG_LEVEL: 'warn' },
      },
    );
    child.stdout.resume();
    child.stderr.resume();
    try {
      let answer: Answer | undefined;
      await until(async () => {
        answer = await get(adminPort, new Agent(), '/healthz').catch(() => undefined);
        return answer !== undefined;
      }, 'the HTTPS admin listener');
      expect(answer!.status).toBe(200);
      expect(answer!.cert.subject.CN).toBe('admin-listener');
      // Plain HTTP on the same port is no longer answered as HTTP.
      await expect(fetch(`http://127.0.0.1:${adminPort}/healthz`)).rejects.toThrow();
    } finally {
      child.kill('SIGKILL');
    }
  });
});
