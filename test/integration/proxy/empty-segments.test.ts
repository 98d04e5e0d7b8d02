// Empty path segments ("//") through the real gateway and a real upstream: nginx (merge_slashes),
// Tomcat and others merge them before they route, so "//admin/x" is "/admin/x" to them. The route
// the gateway checks must be the route such an upstream serves.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { startGateway, type Gateway } from '../../helpers/gateway.js';

const ADMIN_KEY = 'admin-key-0123456789';

const policy = (emptySegments: string | undefined) => (upstream: string) => `version: 1
upstreams: { app: { url: "${upstream}" } }
${emptySegments === undefined ? '' : `paths: { emptySegments: ${emptySegments} }\n`}authentication:
  apiKeys: { keys: [{ id: ops, hash: "${hashApiKey(ADMIN_KEY)}", roles: [admin] }] }
roles: { admin: { permissions: ["admin:*"] } }
routes:
  - { name: admin, match: { path: "/admin/**" }, require: ["admin:read"] }
  - { name: everything-else, match: { path: "/**" }, public: true }
`;

const gateways: Record<string, Gateway> = {};

beforeAll(async () => {
  gateways.default = await startGateway(policy(undefined));
  gateways.reject = await startGateway(policy('reject'));
  gateways.allow = await startGateway(policy('allow'));
});

afterAll(async () => {
  for (const g of Object.values(gateways)) await g.stop();
});

describe('paths.emptySegments: unambiguous (the default)', () => {
  const g = () => gateways.default!;

  it.each(['//admin/x', '///admin/secret', '/x/..//admin/secret'])(
    'refuses %s with 400: with its slashes merged it is a protected route, as written the public catch-all',
    async (path) => {
      const res = await g().send(`GET ${path} HTTP/1.1`);
      expect(res.status).toBe(400);
      expect(res.code).toBe('BAD_REQUEST');
      expect(g().arrivals).toEqual([]);
    },
  );

  it('asks for credentials on /admin//x: protected whether or not the slashes are merged', async () => {
    expect((await g().send('GET /admin//x HTTP/1.1')).code).toBe('AUTH_MISSING');
    expect(g().arrivals).toEqual([]);
  });

  it('forwards an empty segment that does not change the route, as written', async () => {
    const res = await g().send('GET /files//report.pdf HTTP/1.1');
    expect(res.status).toBe(200);
    expect(g().arrivals.map((a) => a.url)).toEqual(['/files//report.pdf']);
  });

  it('serves the protected route to its caller whatever the slashes', async () => {
    const res = await g().send('GET /admin//reports HTTP/1.1', [`X-Api-Key: ${ADMIN_KEY}`]);
    expect(res.status).toBe(200);
    expect(g().arrivals.map((a) => a.url)).toEqual(['/admin//reports']);
  });
});

describe('paths.emptySegments: reject', () => {
  it.each(['/files//report.pdf', '//admin/x'])('refuses %s with 400', async (path) => {
    const g = gateways.reject!;
    const res = await g.send(`GET ${path} HTTP/1.1`);
    expect(res.status).toBe(400);
    expect(g.arrivals).toEqual([]);
  });

  it('serves paths without "//" as before', async () => {
    const g = gateways.reject!;
    expect((await g.send('GET /files/report.pdf HTTP/1.1')).status).toBe(200);
  });
});

describe('paths.emptySegments: allow', () => {
  it('routes "//" as written: //admin/x is the public catch-all (for upstreams that never merge slashes)', async () => {
    const g = gateways.allow!;
    const res = await g.send('GET //admin/x HTTP/1.1');
    expect(res.status).toBe(200);
    expect(g.arrivals.map((a) => a.url)).toEqual(['//admin/x']);
  });
});
