// A real nginx (auth_request) and a real Caddy (forward_auth) in front of a recording upstream,
// each configured with the files shipped in deploy/decisions/ and asking a real Portcullis
// (`--listen off`, a pure decision service): what the client gets and what reaches the upstream
// for allowed, denied, rate-limited and bypass-attempt requests. Both binaries are required:
// `.ci/run` installs them, and a missing one fails this file rather than skipping it.

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { freePort } from '../../helpers/ports.js';
import { redisUrl } from '../../helpers/redis.js';

const shipped = (file: string) => readFileSync(new URL(`../../../deploy/decisions/${file}`, import.meta.url), 'utf8');

interface Arrival {
  readonly url: string;
  readonly headers: Record<string, string | string[] | undefined>;
}
interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
}

/** A request with the path exactly as given (no client-side normalisation). */
function send(port: number, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'GET', path, headers: { host: 'shop.example', ...headers }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function untilListening(port: number, child: ChildProcess, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

function required(binary: string): string {
  try {
    return execFileSync('sh', ['-c', `command -v ${binary}`], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error(`${binary} is not installed: the data-plane tests need it (.ci/run installs nginx-light and caddy)`);
  }
}

const dir = mkdtempSync(join(tmpdir(), 'pcs-planes-'));
const arrivals: Arrival[] = [];
const children: ChildProcess[] = [];
let upstream: Server;
let app: App;
let decisionsPort: number;
let upstreamPort: number;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    arrivals.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    res.end('upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamPort = (upstream.address() as AddressInfo).port;
  writeFileSync(
    join(dir, 'policy.yaml'),
    `version: 1
trustedProxies: [127.0.0.1/32]
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys:
    keys:
      - { id: acme-key, hash: "${hashApiKey('acme-secret')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
store: { url: "${redisUrl()}", prefix: "it:${Date.now().toString(36)}:planes:", onError: deny }
routes:
  - { name: public, match: { path: "/public/**" }, public: true }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
  - { name: admin, match: { path: "/admin/**" }, require: ["admin:*"] }
  - { name: limited, match: { path: "/limited/**" }, public: true, limits: [{ by: "header:x-plane", rate: 1/h, burst: 2 }] }
`,
  );
  app = await startApp({
    policyPath: join(dir, 'policy.yaml'),
    listen: null,
    decisions: { host: '127.0.0.1', port: 0 },
    admin: null,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  decisionsPort = Number(new URL(app.decisionsUrl!).port);
});

afterAll(async () => {
  for (const c of children) c.kill('SIGTERM');
  await app?.shutdown();
  upstream?.closeAllConnections();
  await new Promise((r) => upstream?.close(r));
});

async function startNginx(): Promise<number> {
  const nginx = required('nginx');
  const port = await freePort();
  const d = mkdtempSync(join(dir, 'nginx-'));
  writeFileSync(join(d, 'portcullis-auth.conf'), shipped('nginx/portcullis-auth.conf'));
  writeFileSync(join(d, 'portcullis-protect.conf'), shipped('nginx/portcullis-protect.conf'));
  // The shipped example, pointed at this test's ports and files.
  const site = shipped('nginx/example.conf')
    .replace('server 127.0.0.1:8081;', `server 127.0.0.1:${decisionsPort};`)
    .replace('listen 80;', `listen 127.0.0.1:${port};`)
    .replaceAll('/etc/nginx/portcullis/', `${d}/`)
    .replace('http://127.0.0.1:3000', `http://127.0.0.1:${upstreamPort}`);
  writeFileSync(join(d, 'site.conf'), site);
  const temp = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${d}/${t};`).join('\n');
  writeFileSync(
    join(d, 'nginx.conf'),
    `daemon off;\nmaster_process off;\npid ${d}/nginx.pid;\nerror_log ${d}/error.log warn;\nevents { worker_connections 64; }\nhttp {\n  access_log off;\n${temp}\n  include ${d}/site.conf;\n}\n`,
  );
  const child = spawn(nginx, ['-p', d, '-c', join(d, 'nginx.conf'), '-e', join(d, 'error.log')], { stdio: 'ignore' });
  children.push(child);
  await untilListening(port, child, 'nginx');
  return port;
}

async function startCaddy(): Promise<number> {
  const caddy = required('caddy');
  const port = await freePort();
  const d = mkdtempSync(join(dir, 'caddy-'));
  writeFileSync(join(d, 'portcullis.caddy'), shipped('caddy/portcullis.caddy'));
  writeFileSync(
    join(d, 'Caddyfile'),
    `{\n\tadmin off\n\tauto_https off\n}\nimport ${d}/portcullis.caddy\nhttp://:${port} {\n\timport portcullis 127.0.0.1:${decisionsPort}\n\treverse_proxy 127.0.0.1:${upstreamPort}\n}\n`,
  );
  const env = { ...process.env, HOME: d, XDG_DATA_HOME: d, XDG_CONFIG_HOME: d };
  const child = spawn(caddy, ['run', '--config', join(d, 'Caddyfile'), '--adapter', 'caddyfile'], { stdio: 'ignore', env });
  children.push(child);
  await untilListening(port, child, 'caddy');
  return port;
}

describe.each([
  ['nginx (auth_request)', startNginx],
  ['Caddy (forward_auth)', startCaddy],
])('%s in front of an upstream, asking Portcullis', (name, startPlane) => {
  let port: number;
  beforeAll(async () => {
    port = await startPlane();
  }, 30_000);
  const reached = () => arrivals.splice(0);

  it('forwards an allowed request with the identity Portcullis set, without the key or any identity header the client sent', async () => {
    reached();
    const a = await send(port, '/api/reports?page=2', { 'x-api-key': 'acme-secret', 'x-auth-tenant': 'globex', 'x-auth-roles': 'admin', 'x-auth-issuer': 'forged' });
    expect([a.status, a.body]).toEqual([200, 'upstream']);
    const [up] = reached();
    expect(up!.url).toBe('/api/reports?page=2');
    expect(up!.headers['x-auth-subject']).toBe('acme-key');
    expect(up!.headers['x-auth-tenant']).toBe('acme');
    expect(up!.headers['x-auth-roles']).toBe('user');
    expect(up!.headers['x-auth-issuer']).toBeUndefined();
    expect(up!.headers['x-api-key']).toBeUndefined();
    if (name.startsWith('nginx')) expect(up!.headers['x-request-id']).toMatch(/^[0-9a-f]{32}$/);
  });

  it('forwards a public request without the identity headers a client made up', async () => {
    reached();
    const a = await send(port, '/public/page', { 'x-auth-subject': 'root', 'x-auth-tenant': 'globex' });
    expect(a.status).toBe(200);
    const [up] = reached();
    expect(up!.headers['x-auth-subject']).toBeUndefined();
    expect(up!.headers['x-auth-tenant']).toBeUndefined();
  });

  it('answers denials with their real status and reason code, and the upstream sees none of them', async () => {
    reached();
    const missing = await send(port, '/api/reports');
    expect(missing.status).toBe(401);
    expect(missing.headers['www-authenticate']).toBeDefined();
    expect(missing.body).toContain('AUTH_MISSING');
    const forbidden = await send(port, '/admin/users', { 'x-api-key': 'acme-secret' });
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toContain('PERMISSION_DENIED');
    const none = await send(port, '/nowhere');
    expect(none.status).toBe(404);
    expect(none.body).toContain('ROUTE_NOT_FOUND');
    expect(reached()).toEqual([]);
  });

  it('answers 429 with Retry-After once the rate limit is spent, each request charged once', async () => {
    reached();
    const who = { 'x-plane': name };
    expect((await send(port, '/limited/1', who)).status).toBe(200);
    expect((await send(port, '/limited/2', who)).status).toBe(200);
    const limited = await send(port, '/limited/3', who);
    expect(limited.status).toBe(429);
    expect(Number(limited.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited.body).toContain('RATE_LIMITED');
    expect(reached().map((r) => r.url)).toEqual(['/limited/1', '/limited/2']);
  });

  it.each(['/public/..%2Fapi/reports', '/public/%2e%2e/api/reports', '/public/../api/reports', '/public/..;/api/reports', '/public%2F..%2Fapi/reports'])(
    'lets no path trick reach a protected route without credentials: %s',
    async (path) => {
      reached();
      const a = await send(port, path);
      expect(a.status).toBeGreaterThanOrEqual(400);
      expect(a.status).toBeLessThan(500);
      expect(reached()).toEqual([]);
    },
  );
});
