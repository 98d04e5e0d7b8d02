// The admin API over real sockets, with the memory key store (no store.url) and the Redis one:
// a key id names one key (static or dynamic, in both directions), and every input the API refuses
// is answered with problem+json carrying a stable `code`.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ADMIN_BODY_BYTES } from '../../../src/admin/server.js';
import { type App, startApp } from '../../../src/app.js';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { createLogger } from '../../../src/observability/logger.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { PrivateRedis } from '../../helpers/redis.js';
import { type OkUpstream, okUpstream } from '../../helpers/upstream.js';

const TOKEN = 'admin-input-test-token';
const run = `${process.pid}-${Date.now().toString(36)}`;
const STATIC_ID = `static-${run}`;
/** A second static key, for revoking at runtime. */
const REVOKED_ID = `revoked-${run}`;
let upstream: OkUpstream;
let upstreamUrl: string;
const dirs: string[] = [];
// A Redis of this file's own: other files count the commands the shared one runs.
let redis: PrivateRedis;
const redisUrl = (): string => redis.url;

const policy = (storeUrl: string | undefined, staticIds: readonly string[] = [STATIC_ID, REVOKED_ID]) => `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
authentication:
  apiKeys:
    keys:
${staticIds.map((id) => `      - { id: ${id}, hash: "${hashApiKey(`secret-of-${id}`)}", tenant: acme, roles: [user] }`).join('\n')}
roles: { user: { permissions: ["api:use"] }, auditor: { permissions: ["api:read"] } }
${storeUrl ? `store: { url: "${storeUrl}" }` : ''}
routes:
  - name: api
    match: { path: "/api/**" }
    require: ["api:use"]
`;

async function start(storeUrl: string | undefined): Promise<{ app: App; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-input-'));
  dirs.push(dir);
  const file = join(dir, 'policy.yaml');
  writeFileSync(file, policy(storeUrl));
  const app = await startApp({
    policyPath: file,
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    adminToken: TOKEN,
    drainMs: 0,
    demo: false,
    watch: false,
    logger: createLogger({ level: 'silent' }),
  });
  return { app, file };
}

interface Answer {
  status: number;
  type: string | undefined;
  json: any;
}

async function admin(app: App, method: string, path: string, body?: string, headers: Record<string, string> = {}): Promise<Answer> {
  const res = await request(`${app.adminUrl}${path}`, {
    method: method as 'GET',
    headers: { authorization: `Bearer ${TOKEN}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    ...(body === undefined ? {} : { body }),
  });
  const text = await res.body.text();
  return { status: res.statusCode, type: res.headers['content-type'] as string | undefined, json: text ? JSON.parse(text) : undefined };
}
const post = (app: App, value: unknown) => admin(app, 'POST', '/admin/keys', JSON.stringify(value));

async function proxied(app: App, key: string): Promise<number> {
  const res = await request(`${app.proxyUrl}/api/x`, { headers: { 'x-api-key': key } });
  await res.body.text();
  return res.statusCode;
}

function expectProblem(a: Answer, status: number, code: string): void {
  expect(a.status).toBe(status);
  expect(a.type).toBe('application/problem+json');
  expect(a.json).toMatchObject({ status, code, type: `https://portcullis.dev/problems/${code.toLowerCase().replace(/_/g, '-')}` });
  expect(typeof a.json.title).toBe('string');
  expect(typeof a.json.detail).toBe('string');
}

beforeAll(async () => {
  redis = await PrivateRedis.start();
  upstream = await okUpstream();
  upstreamUrl = upstream.url;
});
afterAll(async () => {
  await upstream.close();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  await redis?.stop();
});

describe.each([
  { store: 'memory', url: (): string | undefined => undefined },
  { store: 'Redis', url: (): string | undefined => redisUrl() },
])('the admin API with the $store key store', ({ store, url }) => {
  let app: App;
  let file: string;
  beforeAll(async () => {
    ({ app, file } = await start(url()));
  });
  afterAll(async () => app?.shutdown());

  it('refuses a dynamic key whose id a static key of the running policy has (409 KEY_ID_TAKEN), and creates nothing', async () => {
    const r = await post(app, { tenant: 'acme', roles: ['user'], id: STATIC_ID });
    expectProblem(r, 409, 'KEY_ID_TAKEN');
    expect(r.json.detail).toContain('static key');
    expect(r.json.key).toBeUndefined();
    const listed = await admin(app, 'GET', '/admin/keys?tenant=acme');
    expect(listed.json.keys.filter((k: { id: string }) => k.id === STATIC_ID)).toEqual([expect.objectContaining({ source: 'policy' })]);
    expect(await proxied(app, `secret-of-${STATIC_ID}`)).toBe(200);
  });

  it('refuses a second dynamic key with the same id (409 KEY_ID_TAKEN)', async () => {
    const id = `dyn-${store}-${run}`;
    expect((await post(app, { tenant: 'acme', roles: ['user'], id })).status).toBe(201);
    const again = await post(app, { tenant: 'acme', roles: ['auditor'], id });
    expectProblem(again, 409, 'KEY_ID_TAKEN');
    expect(again.json.detail).toContain('dynamic key');
  });

  it('revokes a static key at runtime: refused at once, listed as revoked, still refused after a reload and on every replica', async () => {
    const secret = `secret-of-${REVOKED_ID}`;
    const digest = hashApiKey(secret).slice('sha256:'.length);
    // A replica that is already running when the key is revoked elsewhere (Redis only: the memory
    // store is one instance's).
    const other = url() === undefined ? undefined : (await start(url())).app;
    try {
      expect(await proxied(app, secret)).toBe(200);
      const r = await admin(app, 'DELETE', `/admin/keys/${REVOKED_ID}`);
      expect(r.status).toBe(200);
      expect(r.json).toMatchObject({ id: REVOKED_ID, source: 'policy', tenant: 'acme', roles: ['user'], status: 'revoked' });
      expect(r.json.note).toContain(`the policy still lists "${REVOKED_ID}"`);
      expect(JSON.stringify(r.json)).not.toContain(digest);
      expect(await proxied(app, secret)).toBe(401);
      expect(await proxied(app, `secret-of-${STATIC_ID}`)).toBe(200);

      const listed = await admin(app, 'GET', '/admin/keys?tenant=acme');
      expect(JSON.stringify(listed.json)).not.toContain(digest);
      const byId = new Map(listed.json.keys.map((k: { id: string }) => [k.id, k]));
      expect(byId.get(REVOKED_ID)).toMatchObject({ source: 'policy', status: 'revoked', revoked: r.json.revoked });
      expect(byId.get(STATIC_ID)).toMatchObject({ source: 'policy', status: 'active', revoked: null });
      expect((await admin(app, 'GET', '/admin/keys?tenant=nobody')).json.keys).toEqual([]);

      // Again: the same revocation, not a new one.
      const again = await admin(app, 'DELETE', `/admin/keys/${REVOKED_ID}`);
      expect(again.status).toBe(200);
      expect(again.json.revoked).toBe(r.json.revoked);

      expect((await admin(app, 'POST', '/admin/reload')).status).toBe(200);
      expect(await proxied(app, secret)).toBe(401);
      if (other !== undefined) {
        const deadline = Date.now() + 5_000;
        while ((await proxied(other, secret)) !== 401) {
          if (Date.now() > deadline) throw new Error('the other replica still accepts the revoked static key');
          await new Promise((res) => setTimeout(res, 50));
        }
        // A replica started afterwards reads the revocation before its first request.
        const later = (await start(url())).app;
        try {
          expect(await proxied(later, secret)).toBe(401);
        } finally {
          await later.shutdown();
        }
      }
    } finally {
      await other?.shutdown();
    }
    expectProblem(await admin(app, 'DELETE', `/admin/keys/nothing-${run}`), 404, 'NOT_FOUND');
  });

  it('refuses unknown fields, wrong types and bad values with 400 INVALID_BODY naming each field', async () => {
    const unknown = await post(app, { tenant: 'acme', rolez: ['user'], admin: true });
    expectProblem(unknown, 400, 'INVALID_BODY');
    expect(unknown.json.errors).toEqual(['rolez: unknown field (did you mean "roles"?)', 'admin: unknown field']);
    const types = await post(app, { tenant: 'acme', roles: 'user', permissions: ['not a permission'] });
    expectProblem(types, 400, 'INVALID_BODY');
    expect(types.json.errors.join('\n')).toMatch(/^roles: /m);
    expect(types.json.errors.join('\n')).toMatch(/^permissions\[0\]: expected a permission/m);
    expectProblem(await post(app, { roles: ['user'] }), 400, 'INVALID_BODY');
    expect((await post(app, { roles: ['user'] })).json.errors).toEqual(['tenant: required']);
    expect((await post(app, { tenant: 'acme', id: '-bad id' })).json.errors.join()).toMatch(/^id: expected a name/);
    expect((await post(app, { tenant: 'acme', expires: '2001-01-01' })).json.errors).toEqual(['expires: is in the past']);
    expect((await post(app, { tenant: 'acme', expires: 'soon' })).json.errors).toEqual(['expires: expected a date (e.g. 2027-01-01)']);
    expectProblem(await post(app, ['tenant']), 400, 'INVALID_BODY');
  });

  it('refuses a role the running policy does not declare (400 UNKNOWN_ROLE), as it would grant nothing', async () => {
    const r = await post(app, { tenant: 'acme', roles: ['user', 'usr', 'root'] });
    expectProblem(r, 400, 'UNKNOWN_ROLE');
    expect(r.json.roles).toEqual(['usr', 'root']);
    expect(r.json.detail).toContain('"usr" (did you mean "user"?)');
  });

  it('refuses malformed JSON (400 INVALID_JSON) and a body that is not JSON (415)', async () => {
    expectProblem(await admin(app, 'POST', '/admin/keys', '{"tenant": '), 400, 'INVALID_JSON');
    expectProblem(await admin(app, 'POST', '/admin/keys', '{"tenant":"acme"}', { 'content-type': 'text/plain' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    expectProblem(await admin(app, 'POST', '/admin/keys', 'tenant=acme', { 'content-type': 'application/x-www-form-urlencoded' }), 415, 'UNSUPPORTED_MEDIA_TYPE');
    // application/json with a charset is JSON.
    expect((await admin(app, 'POST', '/admin/keys', JSON.stringify({ tenant: 'acme' }), { 'content-type': 'application/json; charset=utf-8' })).status).toBe(201);
  });

  it(`refuses a body over ${MAX_ADMIN_BODY_BYTES} bytes with 413, with or without Content-Length, and keeps serving`, async () => {
    const big = JSON.stringify({ tenant: 'acme', subject: 'x'.repeat(MAX_ADMIN_BODY_BYTES) });
    const r = await admin(app, 'POST', '/admin/keys', big);
    expectProblem(r, 413, 'BODY_TOO_LARGE');
    expect(r.json.maxBytes).toBe(MAX_ADMIN_BODY_BYTES);
    // Chunked, no Content-Length: refused once the limit is crossed.
    const chunked = await new Promise<Answer>((resolve, reject) => {
      const u = new URL(`${app.adminUrl}/admin/keys`);
      const req = httpRequest({ host: u.hostname, port: u.port, path: u.pathname, method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' } }, (res) => {
        let text = '';
        res.on('data', (d) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode!, type: res.headers['content-type'], json: JSON.parse(text) }));
      });
      req.on('error', reject);
      req.write('{"tenant":"acme","subject":"');
      for (let i = 0; i < 4; i++) req.write('y'.repeat(MAX_ADMIN_BODY_BYTES / 2));
      req.end('"}');
    });
    expectProblem(chunked, 413, 'BODY_TOO_LARGE');
    expect((await post(app, { tenant: 'acme' })).status).toBe(201);
  });

  it('answers refusals before the handler with problem+json and a code too (401, 404, 405)', async () => {
    expectProblem(await admin(app, 'GET', '/admin/keys', undefined, { authorization: 'Bearer nope' }), 401, 'ADMIN_UNAUTHORIZED');
    expectProblem(await admin(app, 'GET', '/admin/nothing'), 404, 'NOT_FOUND');
    expectProblem(await admin(app, 'PUT', '/admin/keys'), 405, 'METHOD_NOT_ALLOWED');
  });

  it('refuses a reload that brings a static key with a dynamic key’s id, and keeps the running policy', async () => {
    const id = `taken-${store}-${run}`;
    const created = await post(app, { tenant: 'acme', roles: ['user'], id });
    expect(created.status).toBe(201);
    const hash = app.policy.plan.hash;
    writeFileSync(file, policy(url(), [STATIC_ID, id]));
    const r = await admin(app, 'POST', '/admin/reload');
    expectProblem(r, 422, 'POLICY_REJECTED');
    expect(r.json.errors).toEqual([expect.stringMatching(new RegExp(`^${file}:7:\\d+ authentication\\.apiKeys\\.keys\\[1\\]\\.id: key id "${id}" is already used by a dynamic key`))]);
    expect(app.policy.plan.hash).toBe(hash);
    expect(await proxied(app, created.json.key)).toBe(200);
    // Revoked, the id is free for the static key.
    expect((await admin(app, 'DELETE', `/admin/keys/${id}`)).status).toBe(204);
    expect((await admin(app, 'POST', '/admin/reload')).status).toBe(200);
    expect(await proxied(app, `secret-of-${id}`)).toBe(200);
    writeFileSync(file, policy(url()));
    expect((await admin(app, 'POST', '/admin/reload')).status).toBe(200);
  });
});

describe('starting with a shared Redis key store', () => {
  it('refuses to start a policy whose static key id a dynamic key already has', async () => {
    const { app } = await start(redisUrl());
    const id = `boot-${run}`;
    try {
      expect((await post(app, { tenant: 'acme', roles: ['user'], id })).status).toBe(201);
    } finally {
      await app.shutdown();
    }
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-input-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'policy.yaml'), policy(redisUrl(), [STATIC_ID, id]));
    const starting = startApp({
      policyPath: join(dir, 'policy.yaml'),
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      adminToken: TOKEN,
      drainMs: 0,
      demo: false,
      watch: false,
      logger: createLogger({ level: 'silent' }),
    });
    await expect(starting).rejects.toBeInstanceOf(PolicyError);
    await expect(starting).rejects.toThrow(new RegExp(`keys\\[1\\]\\.id: key id "${id}" is already used by a dynamic key`));
  });
});
