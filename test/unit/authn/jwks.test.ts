import { afterEach, describe, expect, it } from 'vitest';
import type { Plan } from '../../../src/core/plan.js';
import { JwksServer, nowSec, type SigningKey, signingKey, signRaw } from '../../helpers/authn.js';
import { planFrom } from '../../helpers/plan.js';

const ISS = 'https://idp.test/';
const servers: JwksServer[] = [];
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function setup(keys: SigningKey[], timings: string): Promise<{ server: JwksServer; plan: Plan }> {
  const server = new JwksServer();
  servers.push(server);
  server.keys = keys.map((k) => k.publicJwk);
  const url = await server.start();
  const plan = await planFrom(`
version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  jwt:
    - { name: corp, issuer: "${ISS}", audience: portcullis, jwksUrl: "${url}", algorithms: [RS256], ${timings} }
routes:
  - { name: things, match: { path: /v1/things } }
`);
  return { server, plan };
}

// Distinct tokens (jti) so every verification misses the verified-token cache and needs a key.
let n = 0;
const token = (key: SigningKey, kid = key.kid): string => signRaw(key, { alg: 'RS256', kid }, { sub: 'alice', iss: ISS, aud: 'portcullis', exp: nowSec() + 600, jti: `t${++n}` });

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

describe('remote JWKS', () => {
  it('picks up a rotated-in kid with one refetch', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const k2 = await signingKey('RS256', 'k2');
    const { server, plan } = await setup([k1], 'cooldown: 100ms');
    const jwt = plan.authn!.jwt!;
    expect((await jwt.verify(token(k1))).principal?.subject).toBe('alice');
    expect(server.hits).toBe(1);
    server.keys = [k1.publicJwk, k2.publicJwk];
    await sleep(150);
    expect((await jwt.verify(token(k2))).principal?.subject).toBe('alice');
    expect(server.hits).toBe(2);
    expect((await jwt.verify(token(k1))).principal?.subject).toBe('alice');
    expect(server.hits).toBe(2);
  });

  it('keeps serving known keys through an IdP outage, and answers an unknown kid with IDP_UNAVAILABLE', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const k2 = await signingKey('RS256', 'k2');
    const { server, plan } = await setup([k1], 'cooldown: 100ms, cacheMaxAge: 100ms');
    const jwt = plan.authn!.jwt!;
    expect((await jwt.verify(token(k1))).principal).toBeDefined();
    server.down = true;
    await sleep(200); // the cached set is now stale and past the cooldown
    for (let i = 0; i < 5; i++) expect((await jwt.verify(token(k1))).principal?.subject).toBe('alice');
    const unknown = await jwt.verify(token(k2));
    expect(unknown.deny?.code).toBe('IDP_UNAVAILABLE');
    expect(unknown.failure).toBe('idp-unavailable');
  });

  it('answers IDP_UNAVAILABLE (503, never 401) when no key was ever fetched', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const { server, plan } = await setup([k1], 'cooldown: 1s');
    server.down = true;
    const out = await plan.authn!.jwt!.verify(token(k1));
    expect(out.deny?.code).toBe('IDP_UNAVAILABLE');
  });

  it('does not hammer a dead IdP: one fetch per cooldown however many tokens arrive', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const { server, plan } = await setup([k1], 'cooldown: 10s');
    server.down = true;
    const jwt = plan.authn!.jwt!;
    const outs = await Promise.all(Array.from({ length: 50 }, () => jwt.verify(token(k1))));
    for (let i = 0; i < 50; i++) outs.push(await jwt.verify(token(k1)));
    expect(outs.every((o) => o.deny?.code === 'IDP_UNAVAILABLE')).toBe(true);
    expect(server.hits).toBe(1);
  });

  it('refetches at most once per cooldown under an unknown-kid storm', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const forger = await signingKey('RS256', 'forged');
    const { server, plan } = await setup([k1], 'cooldown: 10s');
    const jwt = plan.authn!.jwt!;
    expect((await jwt.verify(token(k1))).principal).toBeDefined();
    expect(server.hits).toBe(1);
    const storm = await Promise.all(Array.from({ length: 100 }, (_, i) => jwt.verify(token(forger, `kid-${i}`))));
    for (let i = 0; i < 100; i++) storm.push(await jwt.verify(token(forger, `seq-${i}`)));
    expect(storm.every((o) => o.deny?.code === 'AUTH_INVALID')).toBe(true);
    expect(server.hits).toBeLessThanOrEqual(2);
  });

  it('refreshes a stale key set in the background while still answering from it', async () => {
    const k1 = await signingKey('RS256', 'k1');
    const { server, plan } = await setup([k1], 'cooldown: 50ms, cacheMaxAge: 100ms');
    const jwt = plan.authn!.jwt!;
    expect((await jwt.verify(token(k1))).principal).toBeDefined();
    await sleep(150);
    expect((await jwt.verify(token(k1))).principal).toBeDefined();
    await sleep(50);
    expect(server.hits).toBe(2);
  });
});
