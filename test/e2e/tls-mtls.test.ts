// Client certificates through the built CLI: --tls-client-ca with each --tls-client-auth mode, the
// `mtls` authenticator mapping SPIFFE and DNS names to principals, and x-forwarded-client-cert,
// which only a trusted proxy may send (anyone else's copy is ignored and never reaches the upstream).
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request } from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPki, type Pem, type Pki, SERVER_SAN } from '../helpers/certs.js';
import { type Serving, serveCli } from '../helpers/cli.js';

const API_KEY = 'pcs_mtls_test_key';
const API_KEY_HASH = `sha256:${createHash('sha256').update(API_KEY).digest('hex')}`;

let pki: Pki;
let stranger: Pki;
let server: Pem;
let spiffeClient: Pem;
let otherDomainClient: Pem;
let dnsClient: Pem;
let strangerClient: Pem;
let upstream: Server;
let upstreamUrl: string;
/** The headers the upstream last received. */
let seen: Record<string, string | string[] | undefined> = {};
const running: Serving[] = [];

const XFCC_WEB = 'By=spiffe://example.org/ns/edge/sa/ingress;Hash=abc;Subject="CN=web";URI=spiffe://example.org/ns/shop/sa/web';

beforeAll(async () => {
  pki = createPki('mtls');
  stranger = createPki('stranger');
  server = pki.issue('server', { cn: 'portcullis', san: SERVER_SAN });
  spiffeClient = pki.issue('spiffe-web', { cn: 'web', san: 'URI:spiffe://example.org/ns/shop/sa/web', client: true });
  otherDomainClient = pki.issue('spiffe-other', { cn: 'web', san: 'URI:spiffe://other.org/ns/shop/sa/web', client: true });
  dnsClient = pki.issue('dns-reporter', { cn: 'reporter', san: 'DNS:reporter.svc.example.org', client: true });
  strangerClient = stranger.issue('stranger', { cn: 'web', san: 'URI:spiffe://example.org/ns/shop/sa/web', client: true });
  upstream = createServer((req, res) => {
    seen = req.headers;
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await Promise.all(running.map((s) => s.stop()));
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

function policy(name: string, extra = ''): string {
  const file = path.join(pki.dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1
${extra}upstreams:
  app: { url: "${upstreamUrl}" }
roles:
  workload: { permissions: ["orders:read"] }
  reporter: { permissions: ["reports:read"] }
authentication:
  apiKeys:
    keys:
      - { id: ops, hash: "${API_KEY_HASH}", roles: [workload] }
  mtls:
    - { name: mesh, match: { uri: "spiffe://example.org/ns/*/sa/*" }, tenant: shop, roles: [workload] }
    - { name: services, match: { dns: "*.svc.example.org" }, roles: [reporter] }
routes:
  - { name: open, match: { path: /open }, public: true, upstream: app }
  - { name: orders, match: { path: /orders }, authenticate: [mtls], require: ["orders:read"], upstream: app }
  - { name: mixed, match: { path: /mixed }, authenticate: [mtls, apiKey], require: ["orders:read"], upstream: app }
`,
  );
  return file;
}

async function serve(name: string, args: readonly string[], extra = ''): Promise<Serving> {
  const s = await serveCli(policy(name, extra), {}, [], { args });
  running.push(s);
  return s;
}

interface Answer {
  status: number;
  code: string | undefined;
}

/** One HTTPS request on a fresh connection, optionally presenting a client certificate. */
function call(port: number, pathName: string, options: { client?: Pem; headers?: Record<string, string> } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: pathName,
        agent: false,
        ca: pki.caPem(),
        servername: 'localhost',
        headers: options.headers,
        ...(options.client === undefined ? {} : { cert: options.client.certPem(), key: options.client.keyPem() }),
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.statusCode === 200 ? undefined : (JSON.parse(body) as { code: string }).code }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const tlsArgs = (mode?: string): string[] => ['--tls-cert', server.cert, '--tls-key', server.key, '--tls-client-ca', pki.ca, ...(mode === undefined ? [] : ['--tls-client-auth', mode])];

describe('--tls-client-auth optional (the default with --tls-client-ca)', () => {
  let s: Serving;
  beforeAll(async () => {
    s = await serve('optional', tlsArgs());
  });

  it('admits a SPIFFE workload certificate as its id, with the tenant and roles of the matching rule', async () => {
    expect(await call(s.port, '/orders', { client: spiffeClient })).toEqual({ status: 200, code: undefined });
    expect(seen['x-auth-subject']).toBe('spiffe://example.org/ns/shop/sa/web');
    expect(seen['x-auth-tenant']).toBe('shop');
    expect(seen['x-auth-roles']).toBe('workload');
    expect(seen['x-forwarded-proto']).toBe('https');
  });

  it('maps a DNS name to its rule, whose roles then decide (403 without the permission)', async () => {
    expect(await call(s.port, '/orders', { client: dnsClient })).toEqual({ status: 403, code: 'PERMISSION_DENIED' });
  });

  it('refuses a verified certificate that no rule maps, without falling through to another method', async () => {
    expect(await call(s.port, '/orders', { client: otherDomainClient })).toEqual({ status: 401, code: 'AUTH_INVALID' });
    expect(await call(s.port, '/mixed', { client: otherDomainClient, headers: { 'x-api-key': API_KEY } })).toEqual({ status: 401, code: 'AUTH_INVALID' });
  });

  it('refuses a certificate another CA signed, though the handshake let it through', async () => {
    expect(await call(s.port, '/orders', { client: strangerClient })).toEqual({ status: 401, code: 'AUTH_INVALID' });
  });

  it('asks a client without a certificate for credentials, and lets the next method of the route answer', async () => {
    expect(await call(s.port, '/orders')).toEqual({ status: 401, code: 'AUTH_MISSING' });
    expect(await call(s.port, '/mixed', { headers: { 'x-api-key': API_KEY } })).toEqual({ status: 200, code: undefined });
    expect(seen['x-auth-key-id']).toBe('ops');
  });

  it('ignores a spoofed x-forwarded-client-cert from a peer that is not a trusted proxy, and strips it', async () => {
    expect(await call(s.port, '/orders', { headers: { 'x-forwarded-client-cert': XFCC_WEB } })).toEqual({ status: 401, code: 'AUTH_MISSING' });
    expect(await call(s.port, '/open', { headers: { 'x-forwarded-client-cert': XFCC_WEB, 'X-Forwarded_Client_Cert': XFCC_WEB } })).toEqual({ status: 200, code: undefined });
    expect(seen['x-forwarded-client-cert']).toBeUndefined();
    expect(seen['x-forwarded_client_cert']).toBeUndefined();
    // Beside a real certificate, the forged header changes nothing either.
    expect(await call(s.port, '/orders', { client: dnsClient, headers: { 'x-forwarded-client-cert': XFCC_WEB } })).toEqual({ status: 403, code: 'PERMISSION_DENIED' });
  });
});

describe('--tls-client-auth require', () => {
  it('completes no exchange without a verified certificate, and serves one with it', async () => {
    const s = await serve('require', tlsArgs('require'));
    await expect(call(s.port, '/open')).rejects.toThrow();
    await expect(call(s.port, '/open', { client: strangerClient })).rejects.toThrow();
    expect(await call(s.port, '/orders', { client: spiffeClient })).toEqual({ status: 200, code: undefined });
  });
});

describe('--tls-client-auth none', () => {
  it('asks for no certificate, so mtls routes see none', async () => {
    const s = await serveCli(policy('none'), {}, [], { args: ['--tls-cert', server.cert, '--tls-key', server.key, '--tls-client-auth', 'none'] });
    running.push(s);
    expect(await call(s.port, '/orders', { client: spiffeClient })).toEqual({ status: 401, code: 'AUTH_MISSING' });
  });
});

describe('x-forwarded-client-cert from a trusted proxy', () => {
  it('authenticates the client the proxy describes and passes the header on', async () => {
    const s = await serve('trusted', [], 'trustedProxies: ["127.0.0.1/32"]\n');
    const r = await fetch(`${s.proxy}/orders`, { headers: { 'x-forwarded-client-cert': XFCC_WEB } });
    expect(r.status).toBe(200);
    expect(seen['x-auth-subject']).toBe('spiffe://example.org/ns/shop/sa/web');
    expect(seen['x-forwarded-client-cert']).toBe(XFCC_WEB);
    const other = await fetch(`${s.proxy}/orders`, { headers: { 'x-forwarded-client-cert': 'By=x;URI=spiffe://other.org/ns/a/sa/b' } });
    expect(other.status).toBe(401);
  });
});
