// ";" path parameters and empty segments through the real gateway and a real upstream: Tomcat,
// Jetty and Spring cut ";…" off every segment before they resolve dot segments and route, and
// nginx (merge_slashes), Tomcat and others merge "//", so the route the gateway checks must be the
// route such an upstream serves. Asserted where it matters: the status, and what path (if any)
// arrived upstream.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { type Gateway, startGateway } from '../../helpers/gateway.js';

const ADMIN_KEY = 'admin-key-0123456789';

/** The policy, with `paths` set to e.g. "{ semicolons: reject }" (undefined: the defaults). */
const policy = (paths: string | undefined) => (upstream: string) =>
  `version: 1
upstreams: { app: { url: "${upstream}" } }
${paths === undefined ? '' : `paths: ${paths}\n`}authentication:
  apiKeys: { keys: [{ id: ops, hash: "${hashApiKey(ADMIN_KEY)}", roles: [admin] }] }
roles: { admin: { permissions: ["admin:*"] } }
routes:
  - { name: admin, match: { path: "/admin/**" }, require: ["admin:read"] }
  - { name: everything-else, match: { path: "/**" }, public: true }
`;

const gateways: Record<string, Gateway> = {};

beforeAll(async () => {
  gateways.default = await startGateway(policy(undefined));
  gateways.reject = await startGateway(policy('{ semicolons: reject }'));
  gateways.allow = await startGateway(policy('{ semicolons: allow }'));
  gateways.rejectSlashes = await startGateway(policy('{ emptySegments: reject }'));
  gateways.allowSlashes = await startGateway(policy('{ emptySegments: allow }'));
});

afterAll(async () => {
  for (const g of Object.values(gateways)) await g.stop();
});

describe('a dot segment hidden behind ";" parameters', () => {
  it.each(['/public/..;/admin/x', '/public/%2e%2e;/admin', '/a/..;jsessionid=1/b', '/public/..%3b/admin/x', '/public/%2E%2E%3Bx/admin/x', '/public/.;x/../admin/x', '/;x/admin/x'])(
    'GET %s is refused with 400 and never reaches the upstream, whatever the paths settings say',
    async (path) => {
      for (const g of Object.values(gateways)) {
        const res = await g.send(`GET ${path} HTTP/1.1`);
        expect(res.status).toBe(400);
        expect(res.code).toBe('BAD_REQUEST');
        expect(g.arrivals).toEqual([]);
      }
    },
  );
});

describe('paths.semicolons: unambiguous (the default)', () => {
  const g = () => gateways.default!;

  it.each(['/admin;x/secret', '/admin%3bx/secret', '/admin%3Bjsessionid=1/secret', '/admin;/secret'])(
    'refuses %s with 400: without its parameters it is a protected route, with them the public catch-all',
    async (path) => {
      const res = await g().send(`GET ${path} HTTP/1.1`);
      expect(res.status).toBe(400);
      expect(res.code).toBe('BAD_REQUEST');
      expect(g().arrivals).toEqual([]);
    },
  );

  it('refuses the same path even with a valid admin key: the route would be a guess', async () => {
    const res = await g().send('GET /admin;x/secret HTTP/1.1', [`X-Api-Key: ${ADMIN_KEY}`]);
    expect(res.status).toBe(400);
    expect(g().arrivals).toEqual([]);
  });

  it('forwards parameters that do not change the route, as written', async () => {
    const res = await g().send('GET /files;v=1/report.pdf;jsessionid=abc HTTP/1.1');
    expect(res.status).toBe(200);
    expect(g().arrivals.map((a) => a.url)).toEqual(['/files;v=1/report.pdf;jsessionid=abc']);
  });

  it('forwards parameters on a protected route to its own caller', async () => {
    const res = await g().send('GET /admin/reports;v=2 HTTP/1.1', [`X-Api-Key: ${ADMIN_KEY}`]);
    expect(res.status).toBe(200);
    expect(g().arrivals.map((a) => a.url)).toEqual(['/admin/reports;v=2']);
  });

  it('still resolves plain dot segments before routing, so /public/../admin/x is the protected route', async () => {
    expect((await g().send('GET /public/../admin/x HTTP/1.1')).code).toBe('AUTH_MISSING');
    expect(g().arrivals).toEqual([]);
  });
});

describe('paths.semicolons: reject', () => {
  it.each(['/files;v=1/report.pdf', '/files%3Bv=1/report.pdf', '/admin;x/secret'])('refuses %s with 400', async (path) => {
    const g = gateways.reject!;
    const res = await g.send(`GET ${path} HTTP/1.1`);
    expect(res.status).toBe(400);
    expect(g.arrivals).toEqual([]);
  });

  it('serves paths without ";" as before', async () => {
    const g = gateways.reject!;
    expect((await g.send('GET /files/report.pdf HTTP/1.1')).status).toBe(200);
    expect(g.arrivals.map((a) => a.url)).toEqual(['/files/report.pdf']);
  });
});

describe('paths.semicolons: allow', () => {
  it('treats ";" as an ordinary character: /admin;x/secret is the public catch-all, forwarded as written', async () => {
    const g = gateways.allow!;
    const res = await g.send('GET /admin;x/secret HTTP/1.1');
    expect(res.status).toBe(200);
    expect(g.arrivals.map((a) => a.url)).toEqual(['/admin;x/secret']);
  });
});

describe('paths.emptySegments: unambiguous (the default)', () => {
  const g = () => gateways.default!;

  it.each(['//admin/x', '///admin/secret', '/x/..//admin/secret'])('refuses %s with 400: with its slashes merged it is a protected route, as written the public catch-all', async (path) => {
    const res = await g().send(`GET ${path} HTTP/1.1`);
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST');
    expect(g().arrivals).toEqual([]);
  });

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
    const g = gateways.rejectSlashes!;
    const res = await g.send(`GET ${path} HTTP/1.1`);
    expect(res.status).toBe(400);
    expect(g.arrivals).toEqual([]);
  });

  it('serves paths without "//" as before', async () => {
    const g = gateways.rejectSlashes!;
    expect((await g.send('GET /files/report.pdf HTTP/1.1')).status).toBe(200);
  });
});

describe('paths.emptySegments: allow', () => {
  it('routes "//" as written: //admin/x is the public catch-all (for upstreams that never merge slashes)', async () => {
    const g = gateways.allowSlashes!;
    const res = await g.send('GET //admin/x HTTP/1.1');
    expect(res.status).toBe(200);
    expect(g.arrivals.map((a) => a.url)).toEqual(['//admin/x']);
  });
});
