// The policy keys that close path, method, header and IPv6 bypasses: what validate accepts and
// refuses, with the key path of the mistake.
import { describe, expect, it } from 'vitest';
import { PolicyError } from '../../../src/policy/diagnostics.js';
import { planFrom } from '../../helpers/plan.js';

const HEAD = 'version: 1\nupstreams: { app: { url: "http://127.0.0.1:9" } }\n';

async function problems(yaml: string): Promise<string[]> {
  try {
    await planFrom(yaml);
    return [];
  } catch (err) {
    if (err instanceof PolicyError) return err.diagnostics.map((d) => `${d.severity} ${d.path}: ${d.message}`);
    throw err;
  }
}

describe('trust-related policy keys', () => {
  it('defaults paths.semicolons and paths.emptySegments to unambiguous, and no route honours method overrides', async () => {
    const plan = await planFrom(`${HEAD}routes:\n  - { name: r, match: { path: /r }, public: true }\n`);
    expect(plan.paths).toEqual({ semicolons: 'unambiguous', emptySegments: 'unambiguous', methodOverride: false });
  });

  it('accepts paths.semicolons and paths.emptySegments reject and allow, and refuses anything else', async () => {
    for (const v of ['reject', 'allow']) {
      expect((await planFrom(`${HEAD}paths: { semicolons: ${v} }\nroutes: []\n`)).paths?.semicolons).toBe(v);
      expect((await planFrom(`${HEAD}paths: { emptySegments: ${v} }\nroutes: []\n`)).paths?.emptySegments).toBe(v);
    }
    expect((await problems(`${HEAD}paths: { semicolons: strip }\nroutes: []\n`)).join('\n')).toMatch(/paths\.semicolons/);
    expect((await problems(`${HEAD}paths: { emptySegments: merge }\nroutes: []\n`)).join('\n')).toMatch(/paths\.emptySegments/);
  });

  it('refuses a methodOverride method the route can never match', async () => {
    const out = await problems(`${HEAD}routes:\n  - { name: r, match: { path: /r, methods: [POST] }, public: true, methodOverride: [DELETE] }\n`);
    expect(out.join('\n')).toMatch(/routes\[0\]\.methodOverride\[0\]: DELETE is not one of this route's methods/);
    const plan = await planFrom(`${HEAD}routes:\n  - { name: r, match: { path: /r, methods: [DELETE] }, public: true, methodOverride: [DELETE] }\n`);
    expect(plan.paths?.methodOverride).toBe(true);
  });

  it('accepts ipv6Prefix 1–128 on by: ip limits and the lockout, and refuses it elsewhere', async () => {
    const ok = await planFrom(`${HEAD}authentication: { apiKeys: { keys: [] }, lockout: { failures: 3, window: 1m, duration: 5m, ipv6Prefix: 56 } }
routes:\n  - { name: r, match: { path: /r }, public: true, limits: [{ by: ip, rate: 1/s, ipv6Prefix: 48 }, { by: ip, rate: 1/s }] }\n`);
    expect(ok.limits!.routes.get(0)!.map((b) => b.ipv6Prefix)).toEqual([48, 64]);
    expect(ok.authn!.lockout!.ipv6Prefix).toBe(56);
    expect((await problems(`${HEAD}routes:\n  - { name: r, match: { path: /r }, public: true, limits: [{ by: tenant, rate: 1/s, ipv6Prefix: 48 }] }\n`)).join('\n')).toMatch(
      /routes\[0\]\.limits\[0\]\.ipv6Prefix: ipv6Prefix applies only to by: ip/,
    );
    for (const bad of [0, 129])
      expect((await problems(`${HEAD}routes:\n  - { name: r, match: { path: /r }, public: true, limits: [{ by: ip, rate: 1/s, ipv6Prefix: ${bad} }] }\n`)).length).toBeGreaterThan(0);
  });

  it('refuses identity header names with "_" and names from the forwarding family', async () => {
    expect((await problems(`${HEAD}authentication: { forward: { tenant: x_tenant } }\nroutes: []\n`)).join('\n')).toMatch(/authentication\.forward\.tenant: "x_tenant": write "-" instead of "_"/);
    for (const name of ['x-forwarded-prefix', 'x-original-url', 'x-real-ip', 'x-http-method-override']) {
      expect((await problems(`${HEAD}authentication: { forward: { issuer: ${name} } }\nroutes: []\n`)).join('\n')).toMatch(/is a reserved header/);
    }
  });
});
