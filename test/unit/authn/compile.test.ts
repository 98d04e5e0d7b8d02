import { generateKeyPairSync } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const HASH = `sha256:${'a'.repeat(64)}`;
const HEAD = 'version: 1\nupstreams: { app: { url: "http://127.0.0.1:9" } }\n';
const ROUTES = 'routes:\n  - { name: r, match: { path: /r } }\n';

async function problems(yaml: string, env: NodeJS.ProcessEnv = {}): Promise<string[]> {
  try {
    const plan = await planFrom(yaml, { env });
    return plan.warnings.map((d) => `warning ${d.path}: ${d.message}`);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.map((d) => `${d.severity} ${d.path}: ${d.message}`);
    throw err;
  }
}

const rsaPem = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
const ecPair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ecPrivatePem = ecPair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const ecPublicPem = ecPair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
const indent = (pem: string): string =>
  pem
    .trim()
    .split('\n')
    .map((l) => `        ${l}`)
    .join('\n');

describe('compileAuthn', () => {
  it('compiles keys, issuers and per-route methods into the plan', async () => {
    const plan = await planFrom(`${HEAD}authentication:
  apiKeys: { keys: [{ id: k, hash: "${HASH}", tenant: acme, roles: [viewer], expires: 2030-01-01 }] }
  jwt:
    - name: corp
      issuer: https://idp/
      audience: portcullis
      algorithms: [RS256]
      publicKey: |
${indent(rsaPem)}
  forward: { subject: X-User }
routes:
  - { name: open, match: { path: /open }, public: true }
  - { name: r, match: { path: /r }, authenticate: [jwt, apiKey] }
`);
    const authn = plan.authn!;
    expect(authn.apiKey!.header).toBe('x-api-key');
    expect(authn.routes.get(1)!.methods.map((m) => m.method)).toEqual(['jwt', 'apiKey']);
    expect(authn.routes.has(0)).toBe(false);
    expect(authn.forward.subject).toBe('x-user');
    expect([...authn.forward.strip].sort()).toEqual(['authorization', 'x-api-key', 'x-auth-issuer', 'x-auth-jwt', 'x-auth-key-id', 'x-auth-roles', 'x-auth-subject', 'x-auth-tenant', 'x-user']);
    expect(Object.isFrozen(authn)).toBe(true);
  });

  it('keeps credentials when forwardCredentials is true', async () => {
    const plan = await planFrom(`${HEAD}authentication:\n  apiKeys: { keys: [] }\n  forwardCredentials: true\n${ROUTES}`);
    expect(plan.authn!.forward.strip.has('x-api-key')).toBe(false);
    expect(plan.authn!.forward.strip.has('authorization')).toBe(false);
  });

  const cases: [string, string, RegExp][] = [
    ['two key sources', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [RS256], jwksUrl: "http://idp/jwks", secret: s }]`, /exactly one of jwksUrl, publicKey or secret/],
    ['HS with a JWKS', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [RS256, HS256], jwksUrl: "http://idp/jwks" }]`, /HS\* algorithms need a secret/],
    ['RS with a secret', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [RS256], secret: "${'s'.repeat(40)}" }]`, /a secret verifies only HS256/],
    [
      'a duplicate issuer',
      `jwt: [{ name: a, issuer: i, audience: x, algorithms: [HS256], secret: "${'s'.repeat(40)}" }, { name: b, issuer: i, audience: x, algorithms: [HS256], secret: "${'s'.repeat(40)}" }]`,
      /issuer "i" is already configured/,
    ],
    ['a bad publicKey', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [RS256], publicKey: "nonsense" }]`, /not a PEM public key/],
    ['a private key as publicKey', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [ES256], publicKey: "${ecPrivatePem.replace(/\n/g, '\\n')}" }]`, /private key/],
    ['an EC key for RS256', `jwt: [{ name: a, issuer: i, audience: x, algorithms: [RS256], publicKey: "${ecPublicPem.replace(/\n/g, '\\n')}" }]`, /public key is EC; it cannot verify/],
    ['a duplicate key hash', `apiKeys: { keys: [{ id: a, hash: "${HASH}" }, { id: b, hash: "${HASH}" }] }`, /also the hash of key "a"/],
    ['a bad expiry date', `apiKeys: { keys: [{ id: a, hash: "${HASH}", expires: "next tuesday" }] }`, /is not a date/],
    ['a tenant with a newline', `apiKeys: { keys: [{ id: a, hash: "${HASH}", tenant: "ac\\nme" }] }`, /visible ASCII/],
    ['a reserved API key header', `apiKeys: { header: Authorization }`, /reserved header/],
    ['an identity header that is the key header', `apiKeys: { header: x-auth-subject }`, /cannot also be an identity header/],
    ['a lockout without a duration', `lockout: { failures: 5, window: 1m }`, /duration/],
  ];
  it.each(cases)('refuses %s', async (_name, section, message) => {
    const out = await problems(`${HEAD}authentication:\n  ${section}\n${ROUTES}`);
    expect(out.filter((p) => p.startsWith('error')).join('\n')).toMatch(message);
  });

  it('refuses a route that names a method that is not configured', async () => {
    const out = await problems(`${HEAD}authentication: { apiKeys: { keys: [] } }\nroutes:\n  - { name: r, match: { path: /r }, authenticate: [jwt] }\n`);
    expect(out).toContain('error routes[0].authenticate[0]: jwt is not configured under authentication');
  });

  it('refuses a protected route when no authentication method is configured, at its require or the route itself', async () => {
    const message =
      'needs credentials, but no authentication method is configured: add authentication.apiKeys (static keys, or {} for keys created through the admin API), authentication.jwt or authentication.mtls, or mark the route public: true';
    expect(await problems(`${HEAD}${ROUTES}`)).toContain(`error routes[0]: route "r" ${message}`);
    expect(await problems(`${HEAD}authentication: { forward: { subject: x-user } }\n${ROUTES}`)).toContain(`error routes[0]: route "r" ${message}`);
    expect(await problems(`${HEAD}authentication: { jwt: [] }\nroutes:\n  - { name: r, match: { path: /r }, require: [a:b] }\n`)).toContain(`error routes[0].require: route "r" ${message}`);
    const fine = await problems(`${HEAD}authentication: { apiKeys: {} }\n${ROUTES}`);
    expect(fine.filter((p) => p.startsWith('error'))).toEqual([]);
  });

  it('warns about a short HMAC secret and undeclared roles', async () => {
    const out = await problems(
      `${HEAD}authentication:
  apiKeys: { keys: [{ id: a, hash: "${HASH}", roles: [ghost] }] }
  jwt: [{ name: a, issuer: i, audience: x, algorithms: [HS256], secret: env:JWT_SECRET }]
${ROUTES}`,
      { JWT_SECRET: 'short' },
    );
    expect(out.join('\n')).toMatch(/the secret is 5 bytes; use at least 32/);
    expect(out.join('\n')).toMatch(/role "ghost" is not declared/);
  });

  it('refuses invalid CIDRs in ip rules and accepts IPv6 and IPv4-mapped ones', async () => {
    const bad = await problems(`${HEAD}ipDeny: ["10.0.0.0/33"]\nroutes:\n  - { name: r, match: { path: /r }, public: true, ipAllow: ["nope"] }\n`);
    expect(bad.join('\n')).toMatch(/ipDeny\[0\].*prefix length/);
    expect(bad.join('\n')).toMatch(/routes\[0\]\.ipAllow\[0\].*not an IP address/);
    const plan = await planFrom(`${HEAD}ipAllow: ["::1/128", "::ffff:127.0.0.0/104"]\nroutes:\n  - { name: r, match: { path: /r }, public: true }\n`);
    expect(plan.ipRules!.global!.denies('127.0.0.1')).toBe(false);
    expect(plan.ipRules!.global!.denies('::ffff:127.0.0.1')).toBe(false);
    expect(plan.ipRules!.global!.denies('10.0.0.1')).toBe(true);
  });
});
