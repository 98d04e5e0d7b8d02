import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compileIdentityJwt, IdentityJwtSigner } from '../../../src/authn/identity-jwt.js';
import type { Plan } from '../../../src/core/plan.js';
import type { Principal } from '../../../src/core/principal.js';
import { CompileContext } from '../../../src/policy/compile-context.js';
import { loadPolicySource } from '../../../src/policy/load.js';
import { contextWith } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

const pem = (type: 'ed25519' | 'ec' | 'rsa'): string => {
  const { privateKey } = type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : type === 'rsa' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ed25519');
  return privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
};

const alice: Principal = { subject: 'alice', tenant: 'acme', roles: ['analyst'], permissions: [], keyId: 'ci-bot', via: 'apiKey' };
const bob: Principal = { ...alice, subject: 'bob', tenant: 'globex' };

describe('IdentityJwtSigner', () => {
  it('signs an EdDSA token the published JWKS verifies, carrying the principal', async () => {
    const signer = new IdentityJwtSigner({ privateKeyPem: pem('ed25519'), ttlMs: 60_000, audience: 'app' });
    const token = await signer.token(alice);
    const { payload, protectedHeader } = await jwtVerify(token, createLocalJWKSet(signer.jwks as never), {
      issuer: 'portcullis',
      audience: 'app',
      algorithms: ['EdDSA'],
    });
    expect(protectedHeader).toMatchObject({ alg: 'EdDSA', kid: signer.jwks.keys[0]!.kid, typ: 'JWT' });
    expect(payload).toMatchObject({ sub: 'alice', tenant: 'acme', roles: ['analyst'], key_id: 'ci-bot', via: 'apiKey' });
    expect(payload.exp! - payload.iat!).toBe(60);
    expect(payload.permissions).toBeUndefined();
  });

  it('signs ES256 with a P-256 key and publishes only the public half', async () => {
    const signer = new IdentityJwtSigner({ privateKeyPem: pem('ec') });
    expect(signer.algorithm).toBe('ES256');
    const jwk = signer.jwks.keys[0]!;
    expect(jwk).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(jwk).not.toHaveProperty('d');
    const token = await signer.token(alice);
    await expect(jwtVerify(token, createLocalJWKSet(signer.jwks as never), { algorithms: ['ES256'] })).resolves.toBeDefined();
  });

  it("does not verify against another signer's keys", async () => {
    const a = new IdentityJwtSigner({ privateKeyPem: pem('ed25519') });
    const b = new IdentityJwtSigner({ privateKeyPem: pem('ed25519') });
    const token = await a.token(alice);
    await expect(jwtVerify(token, createLocalJWKSet(b.jwks as never))).rejects.toThrow();
  });

  it('hands out the cached token synchronously until half its lifetime, per principal', async () => {
    const signer = new IdentityJwtSigner({ privateKeyPem: pem('ed25519'), ttlMs: 60_000 });
    const first = await signer.token(alice);
    const again = signer.token(alice);
    expect(again).toBe(first);
    const other = await signer.token(bob);
    expect(other).not.toBe(first);
    expect(signer.token({ ...alice, roles: ['admin'] })).toBeInstanceOf(Promise);
  });

  it('re-signs in the background after half the lifetime and never hands out a token in its last quarter', async () => {
    const signer = new IdentityJwtSigner({ privateKeyPem: pem('ed25519'), ttlMs: 60_000 });
    const t0 = Date.now();
    const first = await signer.token(alice);
    await new Promise((r) => setTimeout(r, 1_100)); // so the new token's iat is a later second
    // Past half the lifetime: still the cached token, now, while a fresh one is signed.
    expect(signer.token(alice, t0 + 31_000)).toBe(first);
    await new Promise((r) => setTimeout(r, 20));
    const refreshed = signer.token(alice, t0 + 31_000);
    expect(typeof refreshed).toBe('string');
    expect(refreshed).not.toBe(first);
    // In the last quarter of a lifetime the caller waits for a new token.
    const late = signer.token(alice, Date.now() + 50_000);
    expect(late).toBeInstanceOf(Promise);
    const concurrent = signer.token(alice, Date.now() + 50_000);
    expect(concurrent).toBe(late); // one signature per principal, however many requests wait
    await late;
  });

  it('refuses keys it cannot sign EdDSA or ES256 with', () => {
    expect(() => new IdentityJwtSigner({ privateKeyPem: pem('rsa') })).toThrow(/Ed25519 \(EdDSA\) or P-256 \(ES256\)/);
    expect(() => new IdentityJwtSigner({ privateKeyPem: 'not a key' })).toThrow(/not a PEM private key/);
  });
});

describe('compileIdentityJwt', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-idjwt-'));
    await writeFile(join(dir, 'forward.pem'), pem('ed25519'));
    await writeFile(join(dir, 'rsa.pem'), pem('rsa'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const compile = async (jwt: string) => {
    const file = join(dir, 'policy.yaml');
    await writeFile(file, `version: 1\nauthentication:\n  forward:\n    jwt: ${jwt}\n`);
    const loaded = await loadPolicySource(file);
    const cx = new CompileContext(loaded);
    return { signer: compileIdentityJwt(loaded.document, cx), errors: cx.diagnostics.map((d) => `${d.path}: ${d.message}`) };
  };

  it('reads the key from file: and takes ttl, audience and header', async () => {
    const { signer, errors } = await compile('{ key: "file:./forward.pem", ttl: 30s, audience: app, header: X-Identity }');
    expect(errors).toEqual([]);
    expect(signer!.header).toBe('x-identity');
    const { payload } = await jwtVerify(await signer!.token(alice), createLocalJWKSet(signer!.jwks as never), { audience: 'app' });
    expect(payload.exp! - payload.iat!).toBe(30);
    expect(decodeProtectedHeader(await signer!.token(alice)).alg).toBe('EdDSA');
  });

  it('defaults to the x-auth-jwt header', async () => {
    const { signer } = await compile('{ key: "file:./forward.pem" }');
    expect(signer!.header).toBe('x-auth-jwt');
  });

  it('reports an unusable key, a ttl out of range and an inline secret at their keys', async () => {
    expect((await compile('{ key: "file:./rsa.pem" }')).errors).toEqual(['authentication.forward.jwt.key: unsupported key type rsa: use an Ed25519 (EdDSA) or P-256 (ES256) private key']);
    expect((await compile('{ key: "file:./forward.pem", ttl: 2h }')).errors).toEqual(['authentication.forward.jwt.ttl: a forwarded identity token lives between 5s and 1h (got 2h)']);
    expect((await compile('{ key: hunter2 }')).errors[0]).toMatch(/^authentication\.forward\.jwt\.key: expected a PEM private key/);
  });
});

const UNSIGNED = `version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: r, match: { path: /r }, public: true }
`;
/** A policy that signs identity with the key in forward.pem (written beside it). */
const signing = (keys = ''): string => UNSIGNED.replace('routes:', `authentication:\n  forward:\n    jwt: { key: "file:./forward.pem"${keys ? `, ${keys}` : ''} }\nroutes:`);

describe('the identity-jwt stage', () => {
  it('survives the Plan being deep-frozen and puts the token on the context', async () => {
    const identityJwtStage = (await import('../../../src/authn/identity-jwt.stage.js')).createIdentityJwtStage();
    const plan = await planFrom(signing(), { files: { 'forward.pem': pem('ed25519') } });
    const signer = plan.identityJwt!;
    const ctx = contextWith(plan, { principal: alice });
    const first = identityJwtStage.run(ctx);
    expect(first).toBeInstanceOf(Promise);
    expect(await first).toBeNull();
    const token = ctx.identityJwt!;
    await expect(jwtVerify(token, createLocalJWKSet(signer.jwks as never))).resolves.toBeDefined();
    ctx.identityJwt = undefined;
    expect(identityJwtStage.run(ctx)).toBeNull(); // cached: no promise on the hot path
    expect(ctx.identityJwt).toBe(token);
  });

  it('does nothing for anonymous requests or when signing is off', async () => {
    const identityJwtStage = (await import('../../../src/authn/identity-jwt.stage.js')).createIdentityJwtStage();
    const anonymous = contextWith(await planFrom(signing(), { files: { 'forward.pem': pem('ed25519') } }));
    expect(identityJwtStage.run(anonymous)).toBeNull();
    expect(anonymous.identityJwt).toBeUndefined();
    const off = contextWith(await planFrom(UNSIGNED), { principal: alice });
    expect(identityJwtStage.run(off)).toBeNull();
    expect(off.identityJwt).toBeUndefined();
  });
});

describe('the JWKS on the admin listener', () => {
  it('lets an upstream verify forwarded tokens with createRemoteJWKSet, without the admin token', async () => {
    const { AdminServer } = await import('../../../src/admin/server.js');
    const { createLogger } = await import('../../../src/observability/logger.js');
    const { jwksResponse } = await import('../../../src/admin/jwks.js');
    const { createRemoteJWKSet } = await import('jose');
    let plan: Plan = await planFrom(signing('audience: app'), { files: { 'forward.pem': pem('ec') } });
    const signer = plan.identityJwt!;
    const admin = new AdminServer({ host: '127.0.0.1', port: 0, token: 'secret-admin-token', logger: createLogger({ level: 'silent' }) });
    admin.openRoute('/.well-known/jwks.json', () => jwksResponse(plan));
    await admin.listen();
    try {
      const url = new URL('/.well-known/jwks.json', admin.url);
      const res = await fetch(url);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe('public, max-age=60');
      const token = await signer.token(alice);
      const { payload } = await jwtVerify(token, createRemoteJWKSet(url), { issuer: 'portcullis', audience: 'app', algorithms: ['ES256'] });
      expect(payload.sub).toBe('alice');
      plan = await planFrom(UNSIGNED);
      const off = await fetch(url);
      expect(off.status).toBe(404);
      expect(((await off.json()) as { detail: string }).detail).toContain('authentication.forward.jwt');
    } finally {
      await admin.close();
    }
  });
});
