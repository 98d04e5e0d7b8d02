// The gRPC decision door and the proxy door call the same engine: for the same request (Host
// spellings, IPv6 literals, encodings, the client a trusted data plane reports, credentials) the
// Check answer must carry the decision the proxy reaches. One startApp runs both doors.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { checkRequest, type ExtAuthzClient, extAuthzClient } from '../../helpers/ext-authz.js';

const KEY = 'pcs_grpc-door-test-key-0123456789';

const policy = (upstream: string): string => `version: 1
trustedProxies: [127.0.0.1/32]
upstreams: { app: { url: "${upstream}" } }
authentication:
  apiKeys:
    keys: [{ id: k1, hash: "${hashApiKey(KEY)}", tenant: acme, roles: [reader] }]
roles:
  reader: { permissions: ["reports:read"] }
routes:
  - { name: health, match: { path: /healthz }, public: true }
  - { name: api-host, match: { path: "/v1/**", host: api.example.com }, require: ["reports:read"] }
  - { name: v6-only, match: { path: /six/** }, require: ["reports:read"], ipDeny: [203.0.113.0/24] }
  - { name: tenant, match: { path: "/t/{tenant}/reports" }, tenantParam: tenant, require: ["reports:read"] }
`;

interface Case {
  readonly name: string;
  readonly method: string;
  readonly target: string;
  readonly host: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** The original client: what Envoy reports in source.address, and the proxy sees in X-Forwarded-For. */
  readonly client?: string;
}

const withKey = { 'x-api-key': KEY };
const CASES: readonly Case[] = [
  { name: 'a public route', method: 'GET', target: '/healthz', host: 'localhost' },
  { name: 'a host route, Host with a port', method: 'GET', target: '/v1/reports', host: 'api.example.com:8080', headers: withKey },
  { name: 'a host route, Host in upper case', method: 'GET', target: '/v1/reports', host: 'API.Example.COM', headers: withKey },
  { name: 'another host', method: 'GET', target: '/v1/reports', host: 'other.example.com', headers: withKey },
  { name: 'an IPv6 literal Host with a port', method: 'GET', target: '/six/a', host: '[::1]:8080', headers: withKey },
  { name: 'a reported client denied by its address', method: 'GET', target: '/six/a', host: 'localhost', headers: withKey, client: '203.0.113.7' },
  { name: 'a reported client allowed', method: 'GET', target: '/six/a', host: 'localhost', headers: withKey, client: '198.51.100.7' },
  { name: 'an encoded dot segment', method: 'GET', target: '/healthz/%2e%2e/six/a', host: 'localhost' },
  { name: 'a dot segment with a path parameter', method: 'GET', target: '/healthz/..;/six/a', host: 'localhost' },
  { name: 'an encoded slash', method: 'GET', target: '/six%2fa', host: 'localhost', headers: withKey },
  { name: 'a query', method: 'GET', target: '/six/a?x=%2F..', host: 'localhost', headers: withKey },
  { name: 'the caller’s own tenant', method: 'GET', target: '/t/acme/reports', host: 'localhost', headers: withKey },
  { name: 'another tenant', method: 'GET', target: '/t/globex/reports', host: 'localhost', headers: withKey },
  { name: 'an unknown key', method: 'GET', target: '/t/acme/reports', host: 'localhost', headers: { 'x-api-key': 'pcs_unknown' } },
  { name: 'no credential', method: 'GET', target: '/t/acme/reports', host: 'localhost' },
  { name: 'no route', method: 'GET', target: '/nowhere', host: 'localhost', headers: withKey },
];

let app: App;
let upstream: Server;
let dir: string;
let client: ExtAuthzClient;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    res.end('upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = await mkdtemp(join(tmpdir(), 'pcs-grpc-door-'));
  await writeFile(join(dir, 'policy.yaml'), policy(`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`));
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    decisionsGrpc: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  client = extAuthzClient(app.decisionsGrpcAddress ?? '');
});

afterAll(async () => {
  client?.close();
  await app?.shutdown();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
  await rm(dir, { recursive: true, force: true });
});

async function throughProxy(c: Case): Promise<{ status: number; decision: string }> {
  const url = new URL(app.proxyUrl);
  const forwarded = c.client === undefined ? [] : [`x-forwarded-for: ${c.client}`];
  const head = [`${c.method} ${c.target} HTTP/1.1`, `Host: ${c.host}`, ...Object.entries(c.headers ?? {}).map(([k, v]) => `${k}: ${v}`), ...forwarded, 'Connection: close'];
  const data = await new Promise<string>((resolve, reject) => {
    const socket = connect({ port: Number(url.port), host: url.hostname }, () => socket.write(`${head.join('\r\n')}\r\n\r\n`));
    let got = '';
    socket.on('data', (d) => (got += d.toString()));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
  const body = data.slice(data.indexOf('\r\n\r\n') + 4);
  const status = Number(data.split(' ')[1]);
  if (body === 'upstream') return { status, decision: 'allow' };
  return { status, decision: (JSON.parse(body) as { code: string }).code };
}

async function throughGrpc(c: Case): Promise<{ status: number; decision: string }> {
  const res = await client.check(checkRequest(c.method, c.target, c.headers ?? {}, { host: c.host, client: c.client ?? '127.0.0.1' }));
  if (res.status.code === 0) return { status: 200, decision: 'allow' };
  return { status: res.denied_response?.status.code ?? 0, decision: (JSON.parse(res.denied_response?.body ?? '{}') as { code: string }).code };
}

describe('the gRPC decision door and the proxy', () => {
  const seen = new Set<string>();
  for (const c of CASES) {
    it(`reach the same decision for ${c.name}`, async () => {
      const grpc = await throughGrpc(c);
      expect(grpc).toEqual(await throughProxy(c));
      seen.add(grpc.decision);
    });
  }

  it('were compared on allows and on every kind of refusal', () => {
    expect([...seen].sort()).toEqual(['AUTH_INVALID', 'AUTH_MISSING', 'BAD_REQUEST', 'IP_DENIED', 'ROUTE_NOT_FOUND', 'TENANT_MISMATCH', 'allow'].sort());
  });
});
