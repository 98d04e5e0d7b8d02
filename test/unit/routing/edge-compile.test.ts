import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { CorsRule } from '../../../src/routing/cors.js';
import { planFrom } from '../../helpers/plan.js';

const HEAD = `version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication: { apiKeys: { header: x-api-key } }
`;

/** Every error as `line:column path: message`. */
async function errors(yaml: string): Promise<string[]> {
  try {
    await planFrom(HEAD + yaml);
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.filter((d) => d.severity === 'error').map((d) => `${d.line}:${d.column} ${d.path}: ${d.message}`);
    throw err;
  }
  return [];
}

describe('CORS settings', () => {
  it('refuses credentials with any origin, at the line and column of credentials', async () => {
    const got = await errors(`routes:
  - name: r
    match: { path: /r }
    public: true
    cors:
      origins: ["*"]
      credentials: true
`);
    expect(got).toEqual([expect.stringMatching(/^10:\d+ routes\[0\]\.cors\.credentials: credentials: true cannot be combined with origins \["\*"\]/)]);
  });

  it('refuses a top-level credentials: true that a route combines with origins ["*"], pointing at the route\'s origins', async () => {
    const got = await errors(`cors: { origins: ["https://a.example.com"], credentials: true }
routes:
  - name: r
    match: { path: /r }
    public: true
    cors: { origins: ["*"] }
`);
    expect(got).toEqual([expect.stringMatching(/^9:\d+ routes\[0\]\.cors\.origins: credentials: true cannot/)]);
  });

  it('refuses origins with a path, a wildcard over a top-level domain or a wildcard in the middle', async () => {
    const got = await errors(`cors:
  origins: ["https://app.example.com/x", "https://*.com", "https://a.*.example.com", "https://ok.example.com:8443"]
routes:
  - { name: r, match: { path: /r }, public: true }
`);
    expect(got).toHaveLength(3);
    expect(got[0]).toMatch(/cors\.origins\[0\]: .*is not an origin/);
    expect(got[1]).toMatch(/cors\.origins\[1\]: .*at least two labels/);
    expect(got[2]).toMatch(/cors\.origins\[2\]: .*is not an origin/);
  });

  it('needs origins at the top level or on the route', async () => {
    expect(await errors(`routes:\n  - { name: r, match: { path: /r }, public: true, cors: { maxAge: 5m } }\n`)).toEqual([expect.stringMatching(/routes\[0\]\.cors: no origins/)]);
  });

  it('matches exact origins, and a one-label wildcard only over one label', () => {
    const rule = new CorsRule({ origins: ['https://app.example.com', 'https://*.example.org'] }, undefined);
    expect(rule.allowsOrigin('https://app.example.com')).toBe(true);
    expect(rule.allowsOrigin('HTTPS://APP.EXAMPLE.COM')).toBe(true);
    expect(rule.allowsOrigin('https://x.example.org')).toBe(true);
    expect(rule.allowsOrigin('https://a.b.example.org')).toBe(false);
    expect(rule.allowsOrigin('https://.example.org')).toBe(false);
    expect(rule.allowsOrigin('https://evilexample.org')).toBe(false);
    expect(rule.allowsOrigin('http://x.example.org')).toBe(false);
    expect(rule.allowsOrigin('https://app.example.com.evil.test')).toBe(false);
    expect(rule.allowsOrigin('null')).toBe(false);
  });

  it("merges a route's cors over the top level, field by field", async () => {
    const plan = await planFrom(`${HEAD}cors: { origins: ["https://a.example.com"], maxAge: 10m }
routes:
  - { name: r, match: { path: /r, methods: [GET, PUT] }, public: true, cors: { methods: [PUT] } }
  - { name: s, match: { path: /s }, public: true }
`);
    const r = plan.cors!.routes[0]!;
    expect([...r.methods]).toEqual(['PUT']);
    expect(r.preflight('https://a.example.com')).toEqual(expect.arrayContaining(['access-control-max-age', '600', 'access-control-allow-methods', 'PUT']));
    expect([...plan.cors!.routes[1]!.methods]).toEqual(['GET', 'HEAD', 'POST']);
  });
});

describe('rewrites', () => {
  it('refuses a path that uses a parameter the pattern does not capture', async () => {
    const got = await errors(`routes:
  - { name: r, match: { path: "/a/{id}" }, public: true, rewrite: { path: "/items/{item}" } }
`);
    expect(got).toEqual([expect.stringMatching(/^5:\d+ routes\[0\]\.rewrite\.path: the route's path pattern captures no \{item\} \(it captures \{id\}\)/)]);
  });

  it('refuses dot segments and unsafe characters, and a stripPrefix the pattern does not start with', async () => {
    const got = await errors(`routes:
  - { name: a, match: { path: "/a/**" }, public: true, rewrite: { path: "/x/../admin" } }
  - { name: b, match: { path: "/b/**" }, public: true, rewrite: { addPrefix: "/v2/" } }
  - { name: c, match: { path: "/c/**" }, public: true, rewrite: { stripPrefix: "/api" } }
  - { name: d, match: { path: "/d/**" }, public: true, rewrite: { stripPrefix: "/d", path: "/x" } }
  - { name: e, match: { path: "/e/**" }, public: true, rewrite: { addPrefix: "/a%2fb" } }
`);
    expect(got).toEqual([
      expect.stringMatching(/routes\[0\]\.rewrite\.path: invalid segment "\.\."/),
      expect.stringMatching(/routes\[1\]\.rewrite\.addPrefix: .*not a path prefix/),
      expect.stringMatching(/routes\[2\]\.rewrite\.stripPrefix: the route's path pattern \/c\/\*\* does not start with \/api/),
      expect.stringMatching(/routes\[3\]\.rewrite\.path: path replaces the whole path/),
      expect.stringMatching(/routes\[4\]\.rewrite\.addPrefix: .*not a path prefix/),
    ]);
  });

  it('rewrites by prefix and by template, re-encoding captured params', async () => {
    const plan = await planFrom(`${HEAD}routes:
  - { name: a, match: { path: "/api/**" }, public: true, rewrite: { stripPrefix: /api } }
  - { name: b, match: { path: "/b/**" }, public: true, rewrite: { stripPrefix: /b, addPrefix: /v2 } }
  - { name: c, match: { path: "/c/{id}/x" }, public: true, rewrite: { path: "/items/{id}" } }
`);
    const [a, b, c] = plan.rewrites;
    expect(a!('/api/x/y', {})).toBe('/x/y');
    expect(a!('/api', {})).toBe('/');
    expect(b!('/b/q', {})).toBe('/v2/q');
    expect(b!('/b', {})).toBe('/v2');
    expect(c!('/c/a%20b/x', { id: 'a b' })).toBe('/items/a%20b');
    expect(c!('/c/%3F/x', { id: '?' })).toBe('/items/%3F');
  });
});

describe('header transforms', () => {
  it('refuses gateway-owned, identity and credential names, at their position', async () => {
    const got = await errors(`routes:
  - name: r
    match: { path: /r }
    headers:
      request:
        set: { x-auth-tenant: evil, x-forwarded-for: 1.2.3.4, x-api-key: k, x-ok: fine }
        remove: [authorization, host]
      response:
        set: { access-control-allow-origin: "*", x-request-id: x }
        remove: [content-length]
`);
    expect(got).toEqual([
      expect.stringMatching(/^10:\d+ routes\[0\]\.headers\.request\.remove\[0\]: "authorization" cannot be removed: credentials/),
      expect.stringMatching(/^10:\d+ routes\[0\]\.headers\.request\.remove\[1\]: "host" cannot be removed: the gateway owns/),
      expect.stringMatching(/^9:\d+ routes\[0\]\.headers\.request\.set\.x-auth-tenant: "x-auth-tenant" cannot be set: the gateway sets identity/),
      expect.stringMatching(/^9:\d+ routes\[0\]\.headers\.request\.set\.x-forwarded-for: .*the gateway owns/),
      expect.stringMatching(/^9:\d+ routes\[0\]\.headers\.request\.set\.x-api-key: .*credentials/),
      expect.stringMatching(/^13:\d+ routes\[0\]\.headers\.response\.remove\[0\]: "content-length" cannot be removed/),
      expect.stringMatching(/^12:\d+ routes\[0\]\.headers\.response\.set\.access-control-allow-origin: .*cors settings/),
      expect.stringMatching(/^12:\d+ routes\[0\]\.headers\.response\.set\.x-request-id: .*the gateway owns/),
    ]);
  });

  it('refuses an unknown placeholder and a control character in a literal', async () => {
    const got = await errors(`routes:
  - { name: r, match: { path: /r }, headers: { request: { set: { x-a: "{principal.email}", x-b: "a\\rb" } } } }
`);
    expect(got).toEqual([expect.stringMatching(/set\.x-a: unknown placeholder \{principal\.email\}/), expect.stringMatching(/set\.x-b: .*CR, LF/)]);
  });

  it('refuses a per-route timeout that is not a duration', async () => {
    expect(await errors(`routes:\n  - { name: r, match: { path: /r }, public: true, timeouts: { response: soon } }\n`)).toEqual([expect.stringMatching(/routes\[0\]\.timeouts\.response/)]);
  });
});

describe('header templates', () => {
  it('renders placeholders per request and leaves out a header whose value would carry CR/LF', async () => {
    const { contextWith } = await import('../../helpers/context.js');
    const plan = await planFrom(`${HEAD}routes:
  - { name: r, match: { path: /r }, headers: { request: { set: { x-caller: "{principal.subject}@{principal.tenant} via {route} ({requestId})", x-fixed: "yes" } } } }
`);
    const transform = plan.headerTransforms[0]!.request!;
    const principal = (subject: string) => ({ subject, tenant: 'acme', roles: [], permissions: [], keyId: undefined, via: 'test' as const });
    const ok: string[] = [];
    transform.append(contextWith(plan, { route: plan.routes[0], principal: principal('alice'), requestId: 'req-1' }), ok);
    expect(ok).toEqual(['x-caller', 'alice@acme via r (req-1)', 'x-fixed', 'yes']);
    const bad: string[] = [];
    transform.append(contextWith(plan, { route: plan.routes[0], principal: principal('eve\r\nx-injected: 1'), requestId: 'req-2' }), bad);
    expect(bad).toEqual(['x-fixed', 'yes']);
    expect([...transform.drop].sort()).toEqual(['x-caller', 'x-fixed']);
  });
});
