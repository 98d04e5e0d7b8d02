// Each identity header means one thing, through the real gateway and a real upstream: the key id
// header carries an API key's id only, a JWT caller is named by its issuer in its own header, the
// roles header carries the effective roles (inherited included), and the signed identity token
// says the same. A request with both an API key and a bearer token is refused, not guessed.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { type SigningKey, sign, signingKey } from '../../helpers/authn.js';
import { type Gateway, startGateway, valuesOf } from '../../helpers/gateway.js';

const KEY = 'identity-key-0123456789';
const ISS = 'https://idp.meaning.test/';

let g: Gateway;
let renamed: Gateway;
let rsa: SigningKey;
let dir: string;

const policy = (forward: string) => (upstream: string) =>
  `version: 1
upstreams: { app: { url: "${upstream}" } }
authentication:
  apiKeys: { keys: [{ id: ci-bot, hash: "${hashApiKey(KEY)}", tenant: acme, roles: [analyst] }] }
  jwt:
    - { name: corp, issuer: "${ISS}", audience: portcullis, publicKey: '${JSON.stringify(rsa.publicJwk)}', algorithms: [RS256], claims: { tenant: org, roles: roles } }
  forward: ${forward}
roles:
  viewer: { permissions: ["reports:read"] }
  analyst: { inherits: [viewer], permissions: ["reports:export"] }
  admin: { inherits: [analyst], permissions: ["*"] }
routes:
  - { name: both, match: { path: "/v1/**" }, require: ["reports:read"] }
  - { name: keys-only, match: { path: "/keys/**" }, require: ["reports:read"], authenticate: [apiKey] }
`;

beforeAll(async () => {
  rsa = await signingKey('RS256', 'k1');
  dir = await mkdtemp(join(tmpdir(), 'pcs-meaning-'));
  const pem = generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  await writeFile(join(dir, 'forward.pem'), pem);
  g = await startGateway(policy(`{ jwt: { key: "file:${join(dir, 'forward.pem')}" } }`));
  renamed = await startGateway(policy('{ issuer: x-idp, keyId: x-key }'));
});

afterAll(async () => {
  await g?.stop();
  await renamed?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const jwtFor = (roles: string[]) => sign(rsa, { payload: { iss: ISS, aud: 'portcullis', sub: 'bob', org: 'acme', roles } });

describe('identity headers for an API key caller', () => {
  it('carry the key id, no issuer, and the effective roles', async () => {
    const res = await g.send('GET /v1/r HTTP/1.1', [`X-Api-Key: ${KEY}`, 'X-Auth-Issuer: corp', 'X-Auth-Roles: admin']);
    expect(res.status).toBe(200);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-auth-key-id')).toEqual(['ci-bot']);
    expect(valuesOf(a, 'x-auth-issuer')).toEqual([]);
    expect(valuesOf(a, 'x-auth-roles')).toEqual(['analyst,viewer']);
  });

  it('and the signed identity token says the same', async () => {
    await g.send('GET /v1/r HTTP/1.1', [`X-Api-Key: ${KEY}`]);
    const claims = decodeJwt(valuesOf(g.arrivals[0]!, 'x-auth-jwt')[0]!);
    expect(claims).toMatchObject({ sub: 'ci-bot', tenant: 'acme', key_id: 'ci-bot', roles: ['analyst', 'viewer'], via: 'apiKey' });
    expect(claims.idp).toBeUndefined();
  });
});

describe('identity headers for a JWT caller', () => {
  it('carry the issuer in their own header, never in the key id header, and the effective roles', async () => {
    const res = await g.send('GET /v1/r HTTP/1.1', [`Authorization: Bearer ${await jwtFor(['admin'])}`, 'X-Auth-Key-Id: ci-bot']);
    expect(res.status).toBe(200);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-auth-key-id')).toEqual([]);
    expect(valuesOf(a, 'x-auth-issuer')).toEqual(['corp']);
    expect(valuesOf(a, 'x-auth-subject')).toEqual(['bob']);
    expect(valuesOf(a, 'x-auth-roles')).toEqual(['admin,analyst,viewer']);
  });

  it('and the signed identity token names the issuer as idp, with no key_id', async () => {
    await g.send('GET /v1/r HTTP/1.1', [`Authorization: Bearer ${await jwtFor(['analyst'])}`]);
    const claims = decodeJwt(valuesOf(g.arrivals[0]!, 'x-auth-jwt')[0]!);
    expect(claims).toMatchObject({ sub: 'bob', idp: 'corp', roles: ['analyst', 'viewer'], via: 'jwt' });
    expect(claims.key_id).toBeUndefined();
  });

  it('use the names authentication.forward gives them', async () => {
    await renamed.send('GET /v1/r HTTP/1.1', [`Authorization: Bearer ${await jwtFor(['viewer'])}`, 'X-Idp: forged', 'X-Auth-Issuer: forged']);
    const a = renamed.arrivals[0]!;
    expect(valuesOf(a, 'x-idp')).toEqual(['corp']);
    expect(valuesOf(a, 'x-auth-issuer')).toEqual([]);
    expect(valuesOf(a, 'x-key')).toEqual([]);
  });
});

describe('an API key and a bearer token in one request', () => {
  it('is refused with 400 on a route that accepts both, and never reaches the upstream', async () => {
    const res = await g.send('GET /v1/r HTTP/1.1', [`X-Api-Key: ${KEY}`, `Authorization: Bearer ${await jwtFor(['admin'])}`]);
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST');
    expect(g.arrivals).toEqual([]);
  });

  it('is served on a route that accepts only API keys: the key decides, and the token is not forwarded', async () => {
    const res = await g.send('GET /keys/r HTTP/1.1', [`X-Api-Key: ${KEY}`, `Authorization: Bearer ${await jwtFor(['admin'])}`]);
    expect(res.status).toBe(200);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-auth-key-id')).toEqual(['ci-bot']);
    expect(valuesOf(a, 'authorization')).toEqual([]);
  });
});
