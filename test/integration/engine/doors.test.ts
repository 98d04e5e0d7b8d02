// The proxy door, the HTTP/2 door and the offline door (`test`, `explain`) call the same engine: for
// the same request they must reach the same decision, whatever the Host spelling (IPv6 literals included),
// the path's encoding, the forwarding headers or the credential.
import { createHash } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { connect as h2connect } from 'node:http2';
import { type AddressInfo, connect, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import type { Plan } from '../../../src/core/plan.js';
import { validatePolicy } from '../../../src/engine/validate.js';
import { createLogger } from '../../../src/observability/logger.js';
import { simulate } from '../../../src/simulate/simulate.js';
import { requireBuiltCli, runCli } from '../../helpers/cli.js';
import { type Gateway, startGateway } from '../../helpers/gateway.js';

const KEY = 'pcs_doors-test-key-0123456789abcdef';
const HASH = `sha256:${createHash('sha256').update(KEY).digest('hex')}`;

const policy = (upstream: string): string => `version: 1
trustedProxies: [127.0.0.1/32]
upstreams: { app: { url: "${upstream}" } }
authentication:
  apiKeys:
    keys: [{ id: k1, hash: "${HASH}", tenant: acme, roles: [reader] }]
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
}

const withKey = { 'x-api-key': KEY };
const CASES: readonly Case[] = [
  { name: 'a public route', method: 'GET', target: '/healthz', host: 'localhost' },
  { name: 'a host route, Host with a port', method: 'GET', target: '/v1/reports', host: 'api.example.com:8080', headers: withKey },
  { name: 'a host route, Host in upper case', method: 'GET', target: '/v1/reports', host: 'API.Example.COM', headers: withKey },
  { name: 'an IPv6 literal Host with a port', method: 'GET', target: '/v1/reports', host: '[::1]:8080', headers: withKey },
  { name: 'an IPv6 literal Host without a port', method: 'GET', target: '/six/a', host: '[2001:db8::1]', headers: withKey },
  { name: 'an IPv6 literal Host, no credential', method: 'GET', target: '/six/a', host: '[::1]' },
  { name: 'a client behind the trusted proxy, denied by its address', method: 'GET', target: '/six/a', host: '[::1]:80', headers: { ...withKey, 'x-forwarded-for': '203.0.113.7' } },
  { name: 'a client behind the trusted proxy, allowed', method: 'GET', target: '/six/a', host: 'localhost', headers: { ...withKey, 'x-forwarded-for': '198.51.100.7' } },
  { name: 'an encoded dot segment', method: 'GET', target: '/healthz/%2e%2e/six/a', host: 'localhost', headers: withKey },
  { name: 'a dot segment with a path parameter', method: 'GET', target: '/healthz/..;/six/a', host: 'localhost', headers: withKey },
  { name: 'an encoded slash', method: 'GET', target: '/six%2fa', host: 'localhost', headers: withKey },
  { name: 'the caller’s own tenant', method: 'GET', target: '/t/acme/reports', host: 'localhost', headers: withKey },
  { name: 'another tenant', method: 'GET', target: '/t/globex/reports', host: 'localhost', headers: withKey },
  { name: 'an unknown key', method: 'GET', target: '/t/acme/reports', host: 'localhost', headers: { 'x-api-key': 'pcs_unknown' } },
  { name: 'no route', method: 'GET', target: '/nowhere', host: 'localhost', headers: withKey },
];

let gateway: Gateway;
/** Hands every connection to the gateway's HTTP/2 door, as the TLS listener does for ALPN "h2". */
let h2Listener: Server;
let decisions: App;
let plan: Plan;
let policyFile: string;

beforeAll(async () => {
  gateway = await startGateway(policy);
  h2Listener = createServer((socket) => gateway.app.h2.accept(socket));
  await new Promise<void>((r) => h2Listener.listen(0, '127.0.0.1', r));
  const dir = await mkdtemp(join(tmpdir(), 'pcs-doors-'));
  policyFile = join(dir, 'policy.yaml');
  await writeFile(policyFile, policy('http://127.0.0.1:9'));
  const v = await validatePolicy(policyFile);
  if (!v.ok) throw new Error(v.diagnostics.map((d) => d.message).join('; '));
  plan = v.plan;
  decisions = await startApp({
    policyPath: policyFile,
    listen: null,
    decisions: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
});

afterAll(async () => {
  h2Listener?.close();
  await gateway?.stop();
  await decisions?.shutdown();
});

/** What the decision listener's Envoy door answered for the same request: `allow` on 200, else the code. */
async function throughDecision(c: Case): Promise<{ status: number; decision: string }> {
  const url = new URL(decisions.decisionsUrl!);
  const head = [`${c.method} /envoy${c.target} HTTP/1.1`, `Host: ${c.host}`, ...Object.entries(c.headers ?? {}).map(([k, v]) => `${k}: ${v}`), 'Connection: close'];
  const data = await new Promise<string>((resolve, reject) => {
    const socket = connect({ port: Number(url.port), host: url.hostname }, () => socket.write(`${head.join('\r\n')}\r\n\r\n`));
    let got = '';
    socket.on('data', (d) => (got += d.toString()));
    socket.on('end', () => resolve(got));
    socket.on('error', reject);
  });
  const body = data.slice(data.indexOf('\r\n\r\n') + 4);
  const status = Number(data.split(' ')[1]);
  if (status === 200) return { status, decision: 'allow' };
  return { status, decision: (JSON.parse(body) as { code: string }).code };
}

/** What the proxy answered: `allow` when the upstream answered, else the refusal's code. */
async function throughProxy(c: Case): Promise<{ status: number; decision: string }> {
  const url = new URL(gateway.app.proxyUrl);
  const head = [`${c.method} ${c.target} HTTP/1.1`, `Host: ${c.host}`, ...Object.entries(c.headers ?? {}).map(([k, v]) => `${k}: ${v}`), 'Connection: close'];
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

/** The same request over HTTP/2, :authority standing for Host. */
async function throughH2(c: Case): Promise<{ status: number; decision: string }> {
  const session = h2connect(`http://127.0.0.1:${(h2Listener.address() as AddressInfo).port}`);
  try {
    const { status, body } = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':method': c.method, ':path': c.target, ':authority': c.host, ...c.headers });
      let status = 0;
      let body = '';
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => resolve({ status, body }));
      req.on('error', reject);
    });
    if (body === 'upstream') return { status, decision: 'allow' };
    return { status, decision: (JSON.parse(body) as { code: string }).code };
  } finally {
    session.close();
  }
}

describe('the HTTP/2 door and the HTTP/1.1 proxy', () => {
  for (const c of CASES) {
    it(`reach the same decision for ${c.name}`, async () => {
      expect(await throughH2(c)).toEqual(await throughProxy(c));
    });
  }
});

describe('the proxy and explain/test', () => {
  for (const c of CASES) {
    it(`reach the same decision for ${c.name}`, async () => {
      const proxied = await throughProxy(c);
      const simulated = await simulate(plan, { method: c.method, path: c.target, host: c.host, headers: c.headers });
      expect({ status: simulated.status, decision: simulated.decision }).toEqual(proxied);
    });
  }

  for (const c of CASES) {
    it(`and the decision listener reach the same decision for ${c.name}`, async () => {
      expect(await throughDecision(c)).toEqual(await throughProxy(c));
    });
  }

  it('agree through the built CLI too: `explain --host` with an IPv6 literal and a forwarded client', async () => {
    requireBuiltCli();
    const c = CASES.find((x) => x.name.startsWith('a client behind the trusted proxy, denied'))!;
    const headerFlags = Object.entries(c.headers ?? {}).flatMap(([k, v]) => ['--header', `${k}: ${v}`]);
    const r = await runCli(['explain', policyFile, '--method', c.method, '--path', c.target, '--host', c.host, ...headerFlags, '--json']);
    const out = JSON.parse(r.stdout) as { decision: string; status: number };
    const proxied = await throughProxy(c);
    expect(proxied).toEqual({ status: 403, decision: 'IP_DENIED' });
    expect({ status: out.status, decision: out.decision }).toEqual(proxied);
  });
});
