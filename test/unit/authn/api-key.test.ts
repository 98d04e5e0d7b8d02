import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateApiKey, hashApiKey } from '../../../src/authn/api-key.js';
import { createAuthenticateStage } from '../../../src/authn/authenticate.stage.js';
import type { Plan } from '../../../src/core/plan.js';
import { createLogger } from '../../../src/observability/logger.js';
import { authTotal } from '../../../src/observability/metrics.js';
import { captureStream, found, type Listening, sign, signingKey, stageServer } from '../../helpers/authn.js';
import { planFrom } from '../../helpers/plan.js';

const good = generateApiKey();
const revoked = generateApiKey();
const expired = generateApiKey();
const future = generateApiKey();
const unknown = generateApiKey();
const logs = captureStream();
let app: Listening;
let plan: Plan;
let token: string;

async function call(path: string, headers: Record<string, string> = {}): Promise<{ status: number; text: string; headers: Headers }> {
  const res = await fetch(`${app.url}${path}`, { headers });
  return { status: res.status, text: await res.text(), headers: res.headers };
}

/** Sends raw bytes (duplicate headers that fetch would merge) and returns the whole answer. */
function raw(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(app.port, '127.0.0.1', () => socket.end(request));
    let data = '';
    socket.on('data', (d) => (data += d.toString()));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

beforeAll(async () => {
  const key = await signingKey('RS256', 'k1');
  token = await sign(key, { payload: { iss: 'https://idp.test/', aud: 'portcullis' } });
  plan = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys:
    header: X-Api-Key
    keys:
      - { id: ci-bot, hash: "${hashApiKey(good)}", tenant: acme, roles: [analyst] }
      - { id: old-bot, hash: "${hashApiKey(revoked)}", tenant: acme, roles: [analyst], disabled: true }
      - { id: gone-bot, hash: "${hashApiKey(expired)}", tenant: acme, roles: [analyst], expires: 2020-01-01T00:00:00Z }
      - { id: new-bot, hash: "${hashApiKey(future)}", tenant: globex, subject: svc-new, roles: [viewer], permissions: ["reports:read"], expires: "2999-01-01" }
  jwt:
    - { name: corp, issuer: "https://idp.test/", audience: portcullis, publicKey: '${JSON.stringify(key.publicJwk)}', algorithms: [RS256] }
routes:
  - { name: health, match: { path: /healthz }, public: true }
  - { name: keys-only, match: { path: /v1/keys-only }, authenticate: [apiKey] }
  - { name: both, match: { path: /v1/both }, authenticate: [apiKey, jwt] }
`);
  const logger = createLogger({ level: 'debug', destination: logs.stream });
  app = await stageServer(() => plan, [createAuthenticateStage({ logger })]);
});

afterAll(async () => {
  await app?.close();
});

describe('API key authentication', () => {
  it('authenticates a known key into its principal', async () => {
    const res = await call('/v1/keys-only', { 'x-api-key': good });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).principal).toEqual({ subject: 'ci-bot', tenant: 'acme', roles: ['analyst'], permissions: [], keyId: 'ci-bot', via: 'apiKey' });
    const later = await call('/v1/keys-only', { 'x-api-key': future });
    expect(JSON.parse(later.text).principal).toMatchObject({ subject: 'svc-new', tenant: 'globex', permissions: ['reports:read'] });
  });

  it('gives unknown, revoked, expired and malformed keys byte-identical 401 answers', async () => {
    const bodies = new Set<string>();
    const challenges = new Set<string | null>();
    for (const presented of [unknown, revoked, expired, 'x', `pcs_${'a'.repeat(600)}`, 'has space', `${good}x`]) {
      const res = await call('/v1/keys-only', { 'x-api-key': presented });
      expect(res.status).toBe(401);
      expect(JSON.parse(res.text).code).toBe('AUTH_INVALID');
      bodies.add(res.text.replace(/"requestId":"[^"]*"/, '"requestId":""'));
      challenges.add(res.headers.get('www-authenticate'));
    }
    expect(bodies.size).toBe(1);
    expect([...challenges]).toEqual(['ApiKey header="x-api-key"']);
  });

  it('answers AUTH_MISSING with both challenges when a route takes either method', async () => {
    const res = await call('/v1/both');
    expect(res.status).toBe(401);
    expect(JSON.parse(res.text).code).toBe('AUTH_MISSING');
    expect(res.headers.get('www-authenticate')).toBe('ApiKey header="x-api-key", Bearer realm="portcullis"');
  });

  it('tries the next method when a credential of the first kind is absent', async () => {
    const res = await call('/v1/both', { authorization: `Bearer ${token}` });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.text).principal.via).toBe('jwt');
  });

  it('refuses an API key and a bearer token together on a route that accepts both, rather than picking one', async () => {
    for (const key of [unknown, good]) {
      const res = await call('/v1/both', { 'x-api-key': key, authorization: `Bearer ${token}` });
      expect(res.status).toBe(400);
      expect(JSON.parse(res.text).code).toBe('BAD_REQUEST');
    }
  });

  it('on a route that accepts only API keys, a bearer token beside the key is not a credential: the key decides', async () => {
    expect((await call('/v1/keys-only', { 'x-api-key': good, authorization: `Bearer ${token}` })).status).toBe(200);
    expect(JSON.parse((await call('/v1/keys-only', { 'x-api-key': unknown, authorization: `Bearer ${token}` })).text).code).toBe('AUTH_INVALID');
  });

  it('ignores credentials a route does not accept', async () => {
    const res = await call('/v1/keys-only', { authorization: `Bearer ${token}` });
    expect(JSON.parse(res.text).code).toBe('AUTH_MISSING');
  });

  it('lets public routes through without credentials', async () => {
    expect((await call('/healthz')).status).toBe(200);
  });

  it.each(['api_key', 'apikey', 'API_KEY', 'key', 'x-api-key', 'api%5Fkey', 'Api-Key'])('refuses a key in the query string (%s)', async (name) => {
    const res = await call(`/v1/keys-only?a=1&${name}=${good}`, { 'x-api-key': good });
    expect(res.status).toBe(400);
    expect(JSON.parse(res.text).code).toBe('BAD_REQUEST');
  });

  it('leaves harmless query parameters alone', async () => {
    expect((await call('/v1/keys-only?keys=1&monkey=2&q=api_key', { 'x-api-key': good })).status).toBe(200);
  });

  it.each([
    ['X-Api-Key', `X-API-KEY: ${good}\r\nx-api-key: ${good}`],
    ['Authorization', `Authorization: Bearer ${token}\r\nauthorization: Bearer ${token}`],
    ['Host', 'Host: a.example'],
  ])('answers a duplicate %s header with 400', async (_name, extra) => {
    const answer = await raw(`GET /v1/both HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\nConnection: close\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1.1 400 /);
    expect(answer).toContain('"code":"BAD_REQUEST"');
  });

  it('counts attempts by method and result', async () => {
    const value = async (method: string, result: string): Promise<number> => (await authTotal.get()).values.find((v) => v.labels.method === method && v.labels.result === result)?.value ?? 0;
    const before = await value('apiKey', 'success');
    const invalid = await value('apiKey', 'AUTH_INVALID');
    await call('/v1/keys-only', { 'x-api-key': good });
    await call('/v1/keys-only', { 'x-api-key': unknown });
    expect(await value('apiKey', 'success')).toBe(before + 1);
    expect(await value('apiKey', 'AUTH_INVALID')).toBe(invalid + 1);
  });

  it('logs failures with their reason and key id, and never a key or token', async () => {
    await call('/v1/keys-only', { 'x-api-key': revoked });
    await call('/v1/both', { authorization: `Bearer ${token}x` });
    await new Promise((r) => setTimeout(r, 50));
    const text = logs.text();
    expect(text).toContain('"reason":"disabled"');
    expect(text).toContain('"keyId":"old-bot"');
    expect(text).toContain('"reason":"key-in-query"');
    for (const secret of [good, revoked, expired, unknown, token, token.split('.')[2]!]) expect(text).not.toContain(secret);
  });
});

describe('API key digests', () => {
  it('looks every request up by digest, so a key removed from its store is refused at once even after it was accepted', async () => {
    const { ApiKeyAuthenticator } = await import('../../../src/authn/api-key.js');
    const key = generateApiKey();
    const digest = hashApiKey(key).slice('sha256:'.length);
    const principal = Object.freeze({ subject: 'k', tenant: 't', roles: Object.freeze([]), permissions: Object.freeze([]), keyId: 'k', via: 'apiKey' as const });
    const records = new Map([[digest, { id: 'k', principal, expiresAt: undefined, disabled: false }]]);
    const seen: string[] = [];
    const auth = new ApiKeyAuthenticator('x-api-key', [
      {
        lookup: (d: string) => {
          seen.push(d);
          return records.get(d);
        },
      },
    ]);
    expect(found(await auth.authenticate(['x-api-key', key])).principal).toBe(principal);
    expect(found(await auth.authenticate(['x-api-key', key])).principal).toBe(principal);
    records.delete(digest);
    expect(found(await auth.authenticate(['x-api-key', key])).failure).toBe('unknown');
    expect(seen).toEqual([digest, digest, digest]);
  });
});
