import { describe, expect, it } from 'vitest';
import { type AuthOutcome, NOT_MINE } from '../../../src/authn/authenticator.js';
import { globPattern, MtlsAuthenticator, parseSubjectAltName, parseXfcc } from '../../../src/authn/mtls.js';
import { credentialKey } from '../../../src/core/principal.js';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const HEAD = 'version: 1\nupstreams: { app: { url: "http://127.0.0.1:9" } }\nroles: { workload: { permissions: ["orders:read"] } }\n';
const ROUTES = 'routes:\n  - { name: r, match: { path: /r }, upstream: app, authenticate: [mtls] }\n';

async function problems(yaml: string): Promise<string[]> {
  try {
    const plan = await planFrom(yaml);
    return plan.warnings.map((d) => `warning ${d.path} ${d.line}:${d.column}: ${d.message}`);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.map((d) => `${d.severity} ${d.path} ${d.line}:${d.column}: ${d.message}`);
    throw err;
  }
}

/** What a TLS socket offers the authenticator: a verified certificate with these names. */
function tlsPeer(names: { san?: string; cn?: string }, authorized = true, validTo = 'Dec 31 00:00:00 2099 GMT'): object {
  const cert = { subject: names.cn === undefined ? {} : { CN: names.cn }, subjectaltname: names.san, valid_to: validTo };
  return { authorized, authorizationError: authorized ? null : 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', getPeerCertificate: () => cert };
}

const noCertificate = { authorized: false, getPeerCertificate: () => ({}) };

function authenticator(): MtlsAuthenticator {
  return new MtlsAuthenticator([
    { name: 'spiffe', kind: 'uri', pattern: globPattern('spiffe://example.org/ns/*/sa/*', 'uri'), subject: 'uri', tenant: 'acme', roles: ['workload'], permissions: [] },
    { name: 'svc', kind: 'dns', pattern: globPattern('*.svc.example.org', 'dns'), subject: 'dns', tenant: undefined, roles: [], permissions: ['health:read'] },
    { name: 'by-cn', kind: 'dns', pattern: globPattern('*.cn.example.org', 'dns'), subject: 'cn', tenant: undefined, roles: [], permissions: [] },
  ]);
}

describe('reading certificate names', () => {
  it('splits Node subjectaltname text into URI and DNS names, quoted names included', () => {
    expect(parseSubjectAltName('URI:spiffe://example.org/ns/a/sa/b, DNS:web.svc.example.org, IP Address:10.0.0.1, DNS:"odd,name.example.org"')).toEqual({
      uris: ['spiffe://example.org/ns/a/sa/b'],
      dns: ['web.svc.example.org', 'odd,name.example.org'],
    });
    expect(parseSubjectAltName('')).toEqual({ uris: [], dns: [] });
  });

  it("reads Envoy's x-forwarded-client-cert, taking the element the nearest proxy appended", () => {
    const names = parseXfcc(
      'By=spiffe://example.org/ns/edge/sa/gw;URI=spiffe://example.org/ns/evil/sa/x,By=spiffe://example.org/ns/edge/sa/gw;Hash=abc;Subject="CN=web,OU=apps,O=Example";URI=spiffe://example.org/ns/shop/sa/web;DNS=web.svc.example.org',
    );
    expect(names).toEqual({ uris: ['spiffe://example.org/ns/shop/sa/web'], dns: ['web.svc.example.org'], cn: 'web', notAfter: Number.POSITIVE_INFINITY });
    expect(parseXfcc('Hash=abc')).toBeUndefined();
  });

  it('matches globs one segment per * (one label in DNS), ** any run in a URI', () => {
    const spiffe = globPattern('spiffe://example.org/ns/*/sa/*', 'uri');
    expect(spiffe.test('spiffe://example.org/ns/shop/sa/web')).toBe(true);
    expect(spiffe.test('spiffe://example.org/ns/shop/x/sa/web')).toBe(false);
    expect(spiffe.test('spiffe://example.org.evil/ns/shop/sa/web')).toBe(false);
    expect(globPattern('spiffe://example.org/**', 'uri').test('spiffe://example.org/ns/a/sa/b')).toBe(true);
    const dns = globPattern('*.svc.example.org', 'dns');
    expect(dns.test('WEB.svc.example.org')).toBe(true);
    expect(dns.test('a.b.svc.example.org')).toBe(false);
    expect(dns.test('svc.example.org')).toBe(false);
  });
});

describe('the mtls authenticator', () => {
  it('maps a verified SPIFFE certificate to the principal of the first matching rule', () => {
    const out = authenticator().authenticate([], tlsPeer({ san: 'URI:spiffe://example.org/ns/shop/sa/web, DNS:web.svc.example.org', cn: 'web' }));
    expect(out).not.toBe(NOT_MINE);
    const p = (out as AuthOutcome).principal!;
    expect(p).toMatchObject({ subject: 'spiffe://example.org/ns/shop/sa/web', tenant: 'acme', roles: ['workload'], via: 'mtls' });
    // `by: key` limits count each certificate identity apart.
    expect(credentialKey(p)).toBe('mtls:spiffe://example.org/ns/shop/sa/web');
  });

  it('takes the subject from the DNS name or the CN as the rule says', () => {
    const a = authenticator();
    expect(a.authenticate([], tlsPeer({ san: 'DNS:api.svc.example.org' }))).toMatchObject({ principal: { subject: 'api.svc.example.org', permissions: ['health:read'] } });
    expect(a.authenticate([], tlsPeer({ san: 'DNS:x.cn.example.org', cn: 'billing' }))).toMatchObject({ principal: { subject: 'billing' } });
    expect(a.authenticate([], tlsPeer({ san: 'DNS:y.cn.example.org' }))).toMatchObject({ deny: { code: 'AUTH_INVALID' } });
  });

  it('is not the method of a request without a certificate', () => {
    expect(authenticator().authenticate([], noCertificate)).toBe(NOT_MINE);
    expect(authenticator().authenticate([], {})).toBe(NOT_MINE);
    expect(authenticator().authenticate([])).toBe(NOT_MINE);
  });

  it('refuses an unverified certificate, one no rule maps, and an expired one', () => {
    const a = authenticator();
    expect(a.authenticate([], tlsPeer({ san: 'URI:spiffe://example.org/ns/shop/sa/web' }, false))).toMatchObject({ deny: { code: 'AUTH_INVALID' } });
    expect(a.authenticate([], tlsPeer({ san: 'URI:spiffe://other.org/ns/shop/sa/web' }))).toMatchObject({ deny: { code: 'AUTH_INVALID' }, failure: 'no-rule-matches' });
    expect(a.authenticate([], tlsPeer({ san: 'URI:spiffe://example.org/ns/shop/sa/web' }, true, 'Jan  1 00:00:00 2020 GMT'))).toMatchObject({ deny: { code: 'AUTH_EXPIRED' } });
  });

  it('believes x-forwarded-client-cert only from a trusted peer', () => {
    const a = authenticator();
    const xfcc = ['X-Forwarded-Client-Cert', 'By=spiffe://example.org/ns/edge/sa/gw;URI=spiffe://example.org/ns/shop/sa/web'];
    expect(a.authenticate(xfcc, {}, false)).toBe(NOT_MINE);
    expect(a.authenticate(xfcc, {}, true)).toMatchObject({ principal: { subject: 'spiffe://example.org/ns/shop/sa/web' } });
    // The trusted proxy's own certificate is not the client's when it describes one.
    expect(a.authenticate(xfcc, tlsPeer({ san: 'DNS:gw.svc.example.org' }), true)).toMatchObject({ principal: { subject: 'spiffe://example.org/ns/shop/sa/web' } });
    expect(a.authenticate(['x-forwarded-client-cert', 'Hash=abc'], {}, true)).toMatchObject({ deny: { code: 'AUTH_INVALID' } });
  });
});

describe('authentication.mtls in the policy', () => {
  it('compiles rules that routes name with authenticate: [mtls]', async () => {
    const plan = await planFrom(`${HEAD}authentication:\n  mtls:\n    - { name: mesh, match: { uri: "spiffe://example.org/ns/*/sa/*" }, roles: [workload] }\n${ROUTES}`);
    expect(plan.authn.mtls).toBeDefined();
    expect(plan.authn.routes.get(0)!.methods.map((m) => m.method)).toEqual(['mtls']);
  });

  it('points at each mistake by file position', async () => {
    const found = await problems(
      `${HEAD}authentication:\n  mtls:\n    - { name: a, match: { uri: "*" } }\n    - { name: a, match: { dns: "**.example.org" } }\n    - { name: c, match: { uri: "example.org/x" }, roles: [nope] }\n${ROUTES}`,
    );
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^error authentication\.mtls\[0\]\.match\.uri 6:\d+: "\*" would match every certificate/),
        expect.stringMatching(/^error authentication\.mtls\[1\]\.name 7:\d+: rule "a" is already defined/),
        expect.stringMatching(/^error authentication\.mtls\[1\]\.match\.dns 7:\d+: .*only \*, one label/),
        expect.stringMatching(/^error authentication\.mtls\[2\]\.match\.uri 8:\d+: .*is not a URI/),
        expect.stringMatching(/^warning authentication\.mtls\[2\]\.roles\[0\] 8:\d+: role "nope" is not declared/),
      ]),
    );
  });

  it('refuses a route that names mtls when no rule is configured', async () => {
    expect((await problems(`${HEAD}${ROUTES}`)).filter((p) => p.startsWith('error'))).toEqual([
      expect.stringMatching(/^error routes\[0\]\.authenticate\[0\] \d+:\d+: mtls is not configured under authentication/),
    ]);
  });
});
