// Signed identity end to end: Portcullis (in-process, real sockets) forwards an authenticated
// request; the upstream verifies the x-auth-jwt it received with the JWKS from the admin listener.
import { createHash, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRemoteJWKSet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { createLogger } from '../../../src/observability/logger.js';

const KEY = 'identity-jwt-test-key-0123456789';
let dir: string;
let upstream: Server;
let app: App;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  upstream = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    res.end('ok');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const port = (upstream.address() as AddressInfo).port;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-idjwt-proxy-'));
  const { privateKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'forward.pem'), privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
upstreams:
  app: { url: "http://127.0.0.1:${port}" }
authentication:
  apiKeys:
    keys:
      - { id: ci-bot, hash: "sha256:${createHash('sha256').update(KEY).digest('hex')}", tenant: acme }
  forward:
    jwt: { key: "file:./forward.pem", ttl: 30s, audience: app }
routes:
  - name: open
    match: { path: /open }
    public: true
  - name: api
    match: { path: "/v1/**" }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    drainMs: 100,
    demo: false,
    logger: createLogger({ level: 'silent' }),
    watch: false,
  });
});

afterAll(async () => {
  await app?.shutdown();
  await new Promise((r) => upstream.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const get = (path: string, headers: Record<string, string> = {}) => fetch(new URL(path, app.proxyUrl), { headers });

describe('authentication.forward.jwt through the proxy', () => {
  it('sends a token the upstream verifies with the admin JWKS, carrying the principal', async () => {
    const res = await get('/v1/things', { 'x-api-key': KEY });
    expect(res.status).toBe(200);
    const token = seen.at(-1)!['x-auth-jwt'] as string;
    expect(token).toBeTypeOf('string');
    const jwks = createRemoteJWKSet(new URL('/.well-known/jwks.json', app.adminUrl));
    const { payload, protectedHeader } = await jwtVerify(token, jwks, { issuer: 'portcullis', audience: 'app', algorithms: ['EdDSA'] });
    expect(protectedHeader.alg).toBe('EdDSA');
    expect(payload).toMatchObject({ sub: 'ci-bot', tenant: 'acme', key_id: 'ci-bot', via: 'apiKey' });
    expect(payload.exp! - payload.iat!).toBe(30);
  });

  it('reuses the cached token for the same principal', async () => {
    await get('/v1/a', { 'x-api-key': KEY });
    await get('/v1/b', { 'x-api-key': KEY });
    expect(seen.at(-1)!['x-auth-jwt']).toBe(seen.at(-2)!['x-auth-jwt']);
  });

  it('replaces a token the client sent, and sends none on a public route', async () => {
    const forged = 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.';
    await get('/v1/c', { 'x-api-key': KEY, 'X-Auth-JWT': forged });
    expect(seen.at(-1)!['x-auth-jwt']).not.toBe(forged);
    expect(seen.at(-1)!['x-auth-jwt']).toMatch(/^eyJ[\w-]+\.[\w-]+\.[\w-]+$/);
    const open = await get('/open', { 'x-auth-jwt': forged });
    expect(open.status).toBe(200);
    expect(seen.at(-1)!['x-auth-jwt']).toBeUndefined();
  });
});
