// End to end through the real server: the client never chooses identity. Identity and
// X-Forwarded-* headers sent by the client in mixed case, twice, and listed in Connection never
// reach the upstream; it sees exactly the gateway's values. Also API keys, JWTs and IP rules
// through the real listener.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { generateApiKey, hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { captureStream, JwksServer, type Listening, listen, type SigningKey, sign, signingKey } from '../../helpers/authn.js';

const key = generateApiKey();
const seen: IncomingMessage[] = [];
const logs = captureStream();
let upstream: Listening;
let jwks: JwksServer;
let rsa: SigningKey;
let app: App;
let dir: string;
let host: string;
let port: number;

/** One raw HTTP/1.1 request (so duplicate and mixed-case headers go out exactly as written). */
function raw(path: string, headerLines: string[], localAddress?: string): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    // write, not end: a client that half-closes before the answer is treated as gone (abort).
    const socket = connect({ port, host, localAddress }, () =>
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\n${headerLines.map((l) => `${l}\r\n`).join('')}Connection: close\r\n\r\n`),
    );
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve({ status: Number(data.split(' ')[1]), head: data.slice(0, data.indexOf('\r\n\r\n')).toLowerCase(), body: data.slice(data.indexOf('\r\n\r\n') + 4) }));
    socket.on('error', reject);
  });
}

/** Every value the upstream received for `name`, whatever its case. */
function valuesOf(req: IncomingMessage, name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) if (req.rawHeaders[i]!.toLowerCase() === name) out.push(req.rawHeaders[i + 1]!);
  return out;
}

const SPOOF = [
  'X-Auth-Subject: mallory',
  'x-auth-subject: mallory2',
  'X-AUTH-TENANT: globex',
  'x-Auth-Tenant: initech',
  'X-Auth-Roles: admin',
  'x-auth-roles: admin,root',
  'X-Auth-Key-Id: root',
  'X-Forwarded-For: 6.6.6.6',
  'x-forwarded-for: 7.7.7.7',
  'X-Forwarded-Host: evil.example',
  'X-Forwarded-Proto: gopher',
  'Forwarded: for=6.6.6.6',
];

beforeAll(async () => {
  rsa = await signingKey('RS256', 'k1');
  jwks = new JwksServer();
  jwks.keys = [rsa.publicJwk];
  const jwksUrl = await jwks.start();
  upstream = await listen(
    createServer((req, res) => {
      seen.push(req);
      res.end('ok');
    }),
  );
  dir = await mkdtemp(join(tmpdir(), 'pcs-authn-int-'));
  await writeFile(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams: { app: { url: "${upstream.url}" } }
trustedProxies: ["127.0.0.2/32"]
authentication:
  apiKeys:
    keys: [{ id: ci-bot, hash: "${hashApiKey(key)}", tenant: acme, roles: [analyst, viewer] }]
  jwt:
    - { name: corp, issuer: "https://idp.test/", audience: portcullis, jwksUrl: "${jwksUrl}", algorithms: [RS256], claims: { tenant: org_id, roles: roles } }
routes:
  - { name: public, match: { path: /public }, public: true }
  - { name: office, match: { path: /office }, public: true, ipDeny: ["198.51.100.0/24"] }
  - { name: api, match: { path: "/v1/**" } }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    logger: createLogger({ level: 'debug', destination: logs.stream }),
    watch: false,
  });
  const url = new URL(app.proxyUrl);
  host = url.hostname;
  port = Number(url.port);
});

afterAll(async () => {
  await app?.shutdown();
  await upstream?.close();
  await jwks?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('identity to the upstream', () => {
  it('replaces every client-sent identity header with the gateway values (API key)', async () => {
    seen.length = 0;
    const res = await raw('/v1/things', [...SPOOF, `X-Api-Key: ${key}`, 'Connection: X-Auth-Subject, x-auth-tenant, X-Forwarded-For']);
    expect(res.status).toBe(200);
    const req = seen[0]!;
    expect(valuesOf(req, 'x-auth-subject')).toEqual(['ci-bot']);
    expect(valuesOf(req, 'x-auth-tenant')).toEqual(['acme']);
    expect(valuesOf(req, 'x-auth-roles')).toEqual(['analyst,viewer']);
    expect(valuesOf(req, 'x-auth-key-id')).toEqual(['ci-bot']);
    expect(valuesOf(req, 'x-forwarded-for')).toEqual(['127.0.0.1']);
    expect(valuesOf(req, 'x-forwarded-host')).not.toContain('evil.example');
    expect(valuesOf(req, 'x-forwarded-proto')).toEqual(['http']);
    expect(valuesOf(req, 'forwarded')).toEqual([]);
    expect(valuesOf(req, 'x-api-key')).toEqual([]);
  });

  it('forwards the JWT identity and drops the Authorization header', async () => {
    seen.length = 0;
    const token = await sign(rsa, { payload: { iss: 'https://idp.test/', aud: 'portcullis', sub: 'bob', org_id: 'acme', roles: ['viewer'] } });
    const res = await raw('/v1/things', [...SPOOF, `Authorization: Bearer ${token}`]);
    expect(res.status).toBe(200);
    const req = seen[0]!;
    expect(valuesOf(req, 'x-auth-subject')).toEqual(['bob']);
    expect(valuesOf(req, 'x-auth-tenant')).toEqual(['acme']);
    expect(valuesOf(req, 'x-auth-roles')).toEqual(['viewer']);
    expect(valuesOf(req, 'x-auth-key-id')).toEqual([]);
    expect(valuesOf(req, 'x-auth-issuer')).toEqual(['corp']);
    expect(valuesOf(req, 'authorization')).toEqual([]);
  });

  it('sends no identity at all on a public route, whatever the client claims', async () => {
    seen.length = 0;
    expect((await raw('/public', SPOOF)).status).toBe(200);
    const req = seen[0]!;
    for (const h of ['x-auth-subject', 'x-auth-tenant', 'x-auth-roles', 'x-auth-key-id']) expect(valuesOf(req, h)).toEqual([]);
  });

  it('refuses bad, missing and query-string credentials through the real server', async () => {
    const missing = await raw('/v1/things', []);
    expect(missing.status).toBe(401);
    expect(missing.head).toContain('www-authenticate: apikey header="x-api-key", bearer realm="portcullis"');
    expect(missing.body).toContain('"code":"AUTH_MISSING"');
    const bad = await raw('/v1/things', ['X-Api-Key: pcs_nope']);
    expect(bad.status).toBe(401);
    expect(bad.head).toContain('www-authenticate: apikey header="x-api-key"');
    const jwtDown = await raw('/v1/things', ['Authorization: Bearer not.a.token']);
    expect(jwtDown.body).toContain('"code":"AUTH_INVALID"');
    expect((await raw(`/v1/things?api_key=${key}`, [`X-Api-Key: ${key}`])).status).toBe(400);
    expect((await raw('/v1/things', [`X-Api-Key: ${key}`, `x-api-key: ${key}`])).status).toBe(400);
    expect(seen.every((r) => r.url !== `/v1/things?api_key=${key}`)).toBe(true);
  });

  it('never writes a key or token to the logs', async () => {
    await new Promise((r) => setTimeout(r, 100));
    expect(logs.text()).not.toContain(key);
    expect(logs.text()).not.toContain(key.slice(4));
  });

  it('ignores X-Forwarded-For from an untrusted peer when applying IP rules', async () => {
    expect((await raw('/office', ['X-Forwarded-For: 198.51.100.7'])).status).toBe(200);
  });

  it('walks X-Forwarded-For from a trusted proxy right to left', async () => {
    // 127.0.0.2 is a trusted proxy: the hop it reports is the client; what is left of it is not believed.
    const denied = await raw('/office', ['X-Forwarded-For: 6.6.6.6, 198.51.100.7'], '127.0.0.2');
    expect(denied.status).toBe(403);
    expect(denied.body).toContain('IP_DENIED');
    expect((await raw('/office', ['X-Forwarded-For: 198.51.100.7, 203.0.113.5'], '127.0.0.2')).status).toBe(200);
    seen.length = 0;
    expect((await raw('/public', ['X-Forwarded-For: 198.51.100.7, 203.0.113.5'], '127.0.0.2')).status).toBe(200);
    expect(valuesOf(seen[0]!, 'x-forwarded-for').join(',')).toContain('203.0.113.5');
  });
});
