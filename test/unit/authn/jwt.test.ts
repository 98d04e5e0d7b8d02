import { createPublicKey } from 'node:crypto';
import { Agent, createServer, request } from 'node:http';
import { type JWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuthenticateStage } from '../../../src/authn/authenticate.stage.js';
import { createIpRulesStage } from '../../../src/authn/ip-rules.stage.js';
import type { Plan } from '../../../src/core/plan.js';
import { jwtCacheTotal } from '../../../src/observability/metrics.js';
import { b64, JwksServer, type Listening, listen, nowSec, type SigningKey, sign, signingKey, signRaw, stageServer } from '../../helpers/authn.js';
import { planFrom } from '../../helpers/plan.js';

const ISS = 'https://idp.test/';
let jwks: JwksServer;
let trap: Listening;
let trapHits = 0;
let app: Listening;
let plan: Plan;
let rsa: SigningKey;
let ec: SigningKey;
let attacker: SigningKey;
let rsaPublicPem: string;

async function call(token: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const res = await fetch(`${app.url}/v1/things`, { headers: token === undefined ? headers : { authorization: `Bearer ${token}`, ...headers } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

beforeAll(async () => {
  rsa = await signingKey('RS256', 'rsa-1');
  ec = await signingKey('ES256', 'ec-1');
  attacker = await signingKey('RS256', 'rsa-1');
  rsaPublicPem = createPublicKey({ key: rsa.publicJwk as import('node:crypto').JsonWebKey, format: 'jwk' })
    .export({ type: 'spki', format: 'pem' })
    .toString();
  jwks = new JwksServer();
  jwks.keys = [rsa.publicJwk, ec.publicJwk];
  const jwksUrl = await jwks.start();
  trap = await listen(
    createServer((_req, res) => {
      trapHits++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: [attacker.publicJwk] }));
    }),
  );
  plan = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  jwt:
    - name: corp
      issuer: "${ISS}"
      audience: portcullis
      jwksUrl: "${jwksUrl}"
      algorithms: [RS256, ES256]
      clockTolerance: 30s
      claims: { tenant: org_id, roles: realm_access.roles, permissions: scope }
routes:
  - { name: things, match: { path: /v1/things } }
`);
  app = await stageServer(() => plan, [createIpRulesStage(), createAuthenticateStage()]);
});

afterAll(async () => {
  await app?.close();
  await trap?.close();
  await jwks?.close();
});

/** One request over `agent` (keepAlive, one socket: every call rides the same connection). */
function callOn(agent: Agent, token: string): Promise<{ status: number; body: Record<string, unknown>; port: number }> {
  return new Promise((resolve, reject) => {
    const req = request(`${app.url}/v1/things`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (data += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data) as Record<string, unknown>, port: req.socket?.localPort ?? 0 }));
    });
    req.on('error', reject);
    req.end();
  });
}

const cacheCount = async (result: 'hit' | 'miss'): Promise<number> => (await jwtCacheTotal.get()).values.find((v) => v.labels.result === result)?.value ?? 0;

const payload = (extra: Record<string, unknown> = {}): Record<string, unknown> => ({ sub: 'alice', iss: ISS, aud: 'portcullis', exp: nowSec() + 600, ...extra });

describe('JWT bearer authentication', () => {
  it('accepts a valid RS256 token and maps its claims with dot paths', async () => {
    const token = await sign(rsa, { payload: { iss: ISS, aud: 'portcullis', org_id: 'acme', realm_access: { roles: ['analyst', 'viewer'] }, scope: 'reports:read reports:export' } });
    const res = await call(token);
    expect(res.status).toBe(200);
    expect(res.body.principal).toEqual({
      subject: 'alice',
      tenant: 'acme',
      roles: ['analyst', 'viewer'],
      permissions: ['reports:read', 'reports:export'],
      keyId: undefined,
      issuer: 'corp',
      via: 'jwt',
      // The verified claims, for route conditions (`when`).
      claims: expect.objectContaining({ sub: 'alice', org_id: 'acme', realm_access: { roles: ['analyst', 'viewer'] } }),
    });
  });

  it('accepts a valid ES256 token', async () => {
    expect((await call(await sign(ec, { payload: { iss: ISS, aud: 'portcullis' } }))).status).toBe(200);
  });

  it('answers a request without credentials with AUTH_MISSING and a Bearer challenge', async () => {
    const res = await call(undefined);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('AUTH_MISSING');
    expect(res.headers.get('www-authenticate')).toBe('Bearer realm="portcullis"');
  });

  it('treats a non-Bearer Authorization scheme as no credential', async () => {
    const res = await call(undefined, { authorization: 'Basic YWxpY2U6cHc=' });
    expect(res.body.code).toBe('AUTH_MISSING');
  });

  it.each(['none', 'None', 'NONE', 'nOnE', 'noNe'])('refuses alg: %s', async (alg) => {
    const res = await call(`${b64({ alg, typ: 'JWT' })}.${b64(payload())}.`);
    expect(res.status).toBe(401);
    expect(res.body.code).toBe('AUTH_INVALID');
    expect(res.headers.get('www-authenticate')).toContain('error="invalid_token"');
  });

  it('refuses an HS256 token whose HMAC secret is the RSA public key', async () => {
    const token = await new SignJWT(payload()).setProtectedHeader({ alg: 'HS256', kid: 'rsa-1' }).sign(new TextEncoder().encode(rsaPublicPem));
    expect((await call(token)).body.code).toBe('AUTH_INVALID');
  });

  it.each(['jku', 'x5u'])('refuses a token with a %s header and never fetches it', async (name) => {
    const token = signRaw(attacker, { alg: 'RS256', kid: 'attacker', [name]: `${trap.url}/keys.json` }, payload());
    expect((await call(token)).body.code).toBe('AUTH_INVALID');
    expect(trapHits).toBe(0);
  });

  it('refuses a token that embeds its own jwk', async () => {
    const token = signRaw(attacker, { alg: 'RS256', jwk: attacker.publicJwk }, payload());
    expect((await call(token)).body.code).toBe('AUTH_INVALID');
  });

  it('refuses a token that embeds an x5c chain', async () => {
    const token = signRaw(attacker, { alg: 'RS256', kid: 'rsa-1', x5c: ['MIIB'] }, payload());
    expect((await call(token)).body.code).toBe('AUTH_INVALID');
  });

  it('refuses a token signed by another key under a known kid', async () => {
    expect((await call(signRaw(attacker, { alg: 'RS256', kid: 'rsa-1' }, payload()))).body.code).toBe('AUTH_INVALID');
  });

  const claimCases: [string, Record<string, unknown>, string][] = [
    ['an expired token', { exp: nowSec() - 3600 }, 'AUTH_EXPIRED'],
    ['exp just past the 30s tolerance', { exp: nowSec() - 32 }, 'AUTH_EXPIRED'],
    ['a future nbf', { nbf: nowSec() + 3600 }, 'AUTH_INVALID'],
    ['a missing exp', { exp: undefined }, 'AUTH_INVALID'],
    ['a wrong iss', { iss: 'https://evil.test/' }, 'AUTH_INVALID'],
    ['a missing iss', { iss: undefined }, 'AUTH_INVALID'],
    ['a wrong aud', { aud: 'someone-else' }, 'AUTH_INVALID'],
    ['a missing aud', { aud: undefined }, 'AUTH_INVALID'],
    ['a missing sub', { sub: undefined }, 'AUTH_INVALID'],
    ['a subject with CR LF', { sub: 'alice\r\nx-auth-tenant: globex' }, 'AUTH_INVALID'],
    ['a non-ASCII subject', { sub: 'ālice' }, 'AUTH_INVALID'],
    ['a tenant with a control character', { org_id: 'acme\u0007' }, 'AUTH_INVALID'],
    ['roles that are not strings', { realm_access: { roles: [1, 2] } }, 'AUTH_INVALID'],
    ['a role with a comma', { realm_access: { roles: ['admin,viewer'] } }, 'AUTH_INVALID'],
  ];
  it.each(claimCases)('refuses %s', async (_name, extra, code) => {
    const res = await call(signRaw(rsa, { alg: 'RS256', kid: 'rsa-1' }, payload(extra)));
    expect(res.status).toBe(401);
    expect(res.body.code).toBe(code);
  });

  it('accepts exp within the clock tolerance', async () => {
    expect((await call(signRaw(rsa, { alg: 'RS256', kid: 'rsa-1' }, payload({ exp: nowSec() - 10 })))).status).toBe(200);
  });

  it('refuses an unknown crit header', async () => {
    const token = signRaw(rsa, { alg: 'RS256', kid: 'rsa-1', crit: ['urn:x:unknown'], 'urn:x:unknown': true }, payload());
    expect((await call(token)).body.code).toBe('AUTH_INVALID');
  });

  it('refuses an ECDSA signature with r = s = 0', async () => {
    const input = `${b64({ alg: 'ES256', kid: 'ec-1' })}.${b64(payload())}`;
    expect((await call(`${input}.${Buffer.alloc(64).toString('base64url')}`)).body.code).toBe('AUTH_INVALID');
  });

  it('refuses a 64 KB token without verifying it', async () => {
    const big = signRaw(rsa, { alg: 'RS256', kid: 'rsa-1' }, payload({ pad: 'x'.repeat(64 * 1024) }));
    const out = await plan.authn!.jwt!.verify(big);
    expect(out.deny?.code).toBe('AUTH_INVALID');
    expect(out.failure).toBe('too-large');
    // Over HTTP the server's header limit answers first: never a 500, never a 200.
    const res = await fetch(`${app.url}/v1/things`, { headers: { authorization: `Bearer ${big}` } });
    expect([401, 431]).toContain(res.status);
  });

  it('refuses garbage and truncated tokens', async () => {
    for (const t of ['abc', 'a.b.c', `${b64({ alg: 'RS256' })}.${b64('not json')}.x`, (await sign(rsa, { payload: { iss: ISS, aud: 'portcullis' } })).slice(0, -5)]) {
      expect((await call(t)).body.code).toBe('AUTH_INVALID');
    }
  });

  it('serves a repeated token from the verified-token cache', async () => {
    const token = await sign(rsa, { payload: { iss: ISS, aud: 'portcullis', jti: 'cache-test' } });
    const hits = async (): Promise<number> => (await jwtCacheTotal.get()).values.find((v) => v.labels.result === 'hit')?.value ?? 0;
    expect((await call(token)).status).toBe(200);
    const before = await hits();
    const before2 = plan.authn!.jwt!.cachedTokens;
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    expect(await hits()).toBe(before + 2);
    expect(plan.authn!.jwt!.cachedTokens).toBe(before2);
  });

  it('serves a token repeated on one keep-alive connection from the cache until its exp, then verifies it again', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
      const token = signRaw(rsa, { alg: 'RS256', kid: 'rsa-1' }, payload({ exp: nowSec() + 2, jti: 'connection-memo' }));
      const [hits, misses] = [await cacheCount('hit'), await cacheCount('miss')];
      const first = await callOn(agent, token);
      const again = [await callOn(agent, token), await callOn(agent, token), await callOn(agent, token)];
      expect([first, ...again].map((r) => r.status)).toEqual([200, 200, 200, 200]);
      expect(new Set([first, ...again].map((r) => r.port)).size).toBe(1); // one connection throughout
      expect([(await cacheCount('hit')) - hits, (await cacheCount('miss')) - misses]).toEqual([3, 1]);
      await new Promise((r) => setTimeout(r, 2100)); // past exp (still inside the 30 s clock tolerance)
      const later = await callOn(agent, token);
      expect(later.status).toBe(200);
      expect(later.port).toBe(first.port);
      expect((await cacheCount('miss')) - misses).toBe(2); // verified again, not served from the connection
    } finally {
      agent.destroy();
    }
  });

  it('verifies a different token sent on the same connection on its own', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const good = await sign(rsa, { payload: { iss: ISS, aud: 'portcullis', jti: 'same-connection' } });
      const forged = await sign(attacker, { payload: { iss: ISS, aud: 'portcullis', jti: 'same-connection' } });
      expect((await callOn(agent, good)).status).toBe(200);
      expect((await callOn(agent, good)).status).toBe(200);
      const refused = await callOn(agent, forged);
      expect([refused.status, refused.body.code]).toEqual([401, 'AUTH_INVALID']);
      expect((await callOn(agent, good)).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it('never caches a token past its exp', async () => {
    // Start at the top of a second: exp - 29 s with 30 s of tolerance then leaves a whole second of
    // validity for the first two calls (signed late in a second it could leave only milliseconds).
    await new Promise((r) => setTimeout(r, 1000 - (Date.now() % 1000) + 5));
    const token = signRaw(rsa, { alg: 'RS256', kid: 'rsa-1' }, payload({ exp: nowSec() - 29 }));
    expect((await call(token)).status).toBe(200);
    expect((await call(token)).status).toBe(200);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await call(token)).body.code).toBe('AUTH_EXPIRED');
  });

  it('checks typ when the issuer pins it', async () => {
    const jwksKeys: JWK[] = [rsa.publicJwk];
    const typed = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  jwt:
    - { name: typed, issuer: "${ISS}", audience: portcullis, publicKey: '${JSON.stringify({ keys: jwksKeys })}', algorithms: [RS256], typ: at+jwt }
routes:
  - { name: things, match: { path: /v1/things } }
`);
    const ok = await typed.authn!.jwt!.verify(signRaw(rsa, { alg: 'RS256', kid: 'rsa-1', typ: 'at+jwt' }, payload()));
    expect(ok.principal?.subject).toBe('alice');
    const wrong = await typed.authn!.jwt!.verify(signRaw(rsa, { alg: 'RS256', kid: 'rsa-1', typ: 'JWT' }, payload()));
    expect(wrong.deny?.code).toBe('AUTH_INVALID');
  });
});
