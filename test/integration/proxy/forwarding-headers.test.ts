// The forwarding family and "_" look-alikes through the real gateway and a real upstream, from an
// untrusted peer (127.0.0.1) and a trusted proxy (127.0.0.2), on a public and a protected route.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { type Arrival, type Gateway, namesOf, startGateway, valuesOf } from '../../helpers/gateway.js';

const KEY = 'forwarding-key-0123456789';
const UNTRUSTED = '127.0.0.1';
const TRUSTED = '127.0.0.2';

let g: Gateway;

beforeAll(async () => {
  g = await startGateway(
    (upstream) => `version: 1
upstreams: { app: { url: "${upstream}" } }
trustedProxies: ["${TRUSTED}/32"]
authentication:
  apiKeys: { keys: [{ id: ci-bot, hash: "${hashApiKey(KEY)}", tenant: acme, roles: [viewer] }] }
  forward: { subject: x-user }
roles: { viewer: { permissions: ["things:read"] } }
routes:
  - { name: public, match: { path: "/pub/**" }, public: true }
  - { name: api, match: { path: "/v1/**" }, require: ["things:read"] }
`,
  );
});

afterAll(async () => {
  await g?.stop();
});

/** Headers that make a framework believe another client, host, scheme, prefix, URL or method. */
const FAMILY = [
  'X-Forwarded-For: 6.6.6.6',
  'X-Forwarded-Host: evil.example',
  'X-Forwarded-Proto: https',
  'X-Forwarded-Port: 8443',
  'X-Forwarded-Prefix: /admin',
  'X-Forwarded-Server: evil',
  'X-Forwarded-Uri: /admin/x',
  'X-Forwarded-Method: DELETE',
  'X-Original-URL: /admin/x',
  'X-Original-URI: /admin/x',
  'X-Rewrite-URL: /admin/x',
  'X-Original-Host: evil.example',
  'X-Original-Method: DELETE',
  'X-Real-IP: 6.6.6.6',
  'X-Client-IP: 6.6.6.6',
  'True-Client-IP: 6.6.6.6',
  'CF-Connecting-IP: 6.6.6.6',
  'X-Cluster-Client-IP: 6.6.6.6',
  'Forwarded: for=6.6.6.6;host=evil.example;proto=https',
];

/** "_" spellings of gateway-owned names: identity (default and renamed), signed identity, forwarding, request id. */
const LOOK_ALIKES = [
  'X-Auth_Tenant: globex',
  'x_auth_subject: mallory',
  'X_User: mallory',
  'x_auth_roles: admin',
  'X_Auth_Key_Id: root',
  'x_auth_issuer: corp',
  'X_Auth_JWT: forged',
  'X-Forwarded_For: 6.6.6.6',
  'X-Real_IP: 6.6.6.6',
  'X_Forwarded_Prefix: /admin',
  'X_Original_URL: /admin/x',
  'x_request_id: forged',
];

const ALWAYS_GONE = [
  'x-forwarded-uri',
  'x-forwarded-method',
  'x-original-url',
  'x-original-uri',
  'x-rewrite-url',
  'x-original-host',
  'x-original-method',
  'x-real-ip',
  'x-client-ip',
  'true-client-ip',
  'cf-connecting-ip',
  'x-cluster-client-ip',
  'forwarded',
];

function expectNoLookAlikes(a: Arrival): void {
  expect(namesOf(a).filter((n) => n.includes('_'))).toEqual([]);
}

describe.each([
  ['public', '/pub/page', []],
  ['protected', '/v1/things', [`X-Api-Key: ${KEY}`]],
])('on the %s route', (_name, path, credentials) => {
  it("from an untrusted peer, the upstream sees only the gateway's forwarding headers and no look-alike", async () => {
    const res = await g.send(`GET ${path} HTTP/1.1`, [...FAMILY, ...LOOK_ALIKES, ...credentials], UNTRUSTED);
    expect(res.status).toBe(200);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-forwarded-for')).toEqual([UNTRUSTED]);
    expect(valuesOf(a, 'x-forwarded-proto')).toEqual(['http']);
    expect(valuesOf(a, 'x-forwarded-host')[0]).toMatch(/^127\.0\.0\.1:\d+$/);
    for (const name of ['x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-server', ...ALWAYS_GONE]) expect(valuesOf(a, name), name).toEqual([]);
    expect(valuesOf(a, 'x-request-id')[0]).not.toBe('forged');
    expectNoLookAlikes(a);
  });

  it('from a trusted proxy, its X-Forwarded-* carry over, but URL, method and client-address rewrites and look-alikes do not', async () => {
    const res = await g.send(`GET ${path} HTTP/1.1`, [...FAMILY, ...LOOK_ALIKES, ...credentials], TRUSTED);
    expect(res.status).toBe(200);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-forwarded-for')).toEqual([`6.6.6.6, ${TRUSTED}`]);
    expect(valuesOf(a, 'x-forwarded-proto')).toEqual(['https']);
    expect(valuesOf(a, 'x-forwarded-host')).toEqual(['evil.example']);
    expect(valuesOf(a, 'x-forwarded-port')).toEqual(['8443']);
    expect(valuesOf(a, 'x-forwarded-prefix')).toEqual(['/admin']);
    for (const name of ALWAYS_GONE) expect(valuesOf(a, name), name).toEqual([]);
    expectNoLookAlikes(a);
  });
});

describe('identity next to its look-alikes', () => {
  it('on a public route the upstream gets no identity at all, neither the real names nor "_" spellings', async () => {
    await g.send('GET /pub/page HTTP/1.1', ['X-User: mallory', 'X-Auth-Tenant: globex', ...LOOK_ALIKES], TRUSTED);
    const a = g.arrivals[0]!;
    for (const name of ['x-user', 'x-auth-subject', 'x-auth-tenant', 'x-auth-roles', 'x-auth-key-id', 'x-auth-issuer', 'x-auth-jwt']) expect(valuesOf(a, name), name).toEqual([]);
    expectNoLookAlikes(a);
  });

  it("on a protected route the upstream gets exactly the gateway's identity (renamed subject header included)", async () => {
    await g.send('GET /v1/things HTTP/1.1', [`X-Api-Key: ${KEY}`, ...LOOK_ALIKES], TRUSTED);
    const a = g.arrivals[0]!;
    expect(valuesOf(a, 'x-user')).toEqual(['ci-bot']);
    expect(valuesOf(a, 'x-auth-tenant')).toEqual(['acme']);
    expect(valuesOf(a, 'x-auth-key-id')).toEqual(['ci-bot']);
    expect(valuesOf(a, 'x-auth-jwt')).toEqual([]);
    expectNoLookAlikes(a);
  });

  it('passes ordinary headers with "_" that name nothing the gateway owns', async () => {
    await g.send('GET /pub/page HTTP/1.1', ['X_Custom_Thing: 1', 'x-app_version: 2']);
    expect(valuesOf(g.arrivals[0]!, 'x_custom_thing')).toEqual(['1']);
    expect(valuesOf(g.arrivals[0]!, 'x-app_version')).toEqual(['2']);
  });
});
