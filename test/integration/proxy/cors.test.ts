// CORS settings that the end-to-end suite does not cover, in process: any origin, credentials, and
// a preflight for a route without CORS, which is routed like any OPTIONS request.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Gateway, startGateway } from '../../helpers/gateway.js';

let gw: Gateway;

beforeAll(async () => {
  gw = await startGateway(
    (up) => `version: 1
upstreams: { app: { url: "${up}" } }
routes:
  - { name: open, match: { path: "/open/**" }, public: true, cors: { origins: ["*"], exposeHeaders: [x-request-id] } }
  - { name: cookies, match: { path: "/cookies" }, public: true, cors: { origins: ["https://app.example.com"], credentials: true } }
  - { name: plain, match: { path: "/plain" }, public: true }
  - { name: plain-get, match: { path: "/plain-get", methods: [GET] }, public: true }
`,
  );
});

afterAll(async () => {
  await gw.stop();
});

const preflight = (origin: string, method = 'GET'): string[] => [`Origin: ${origin}`, `Access-Control-Request-Method: ${method}`];

describe('CORS variants', () => {
  it('answers any origin with "*" and no Vary when the rule allows every origin without credentials', async () => {
    const pre = await gw.send('OPTIONS /open/x HTTP/1.1', preflight('https://anyone.test'));
    expect(pre.status).toBe(204);
    expect(pre.head).toContain('access-control-allow-origin: *');
    expect(pre.head).not.toContain('vary:');
    const get = await gw.send('GET /open/x HTTP/1.1', ['Origin: https://anyone.test']);
    expect(get.head).toContain('access-control-allow-origin: *');
    expect(get.head).toContain('access-control-expose-headers: x-request-id');
    expect(get.head).not.toContain('vary:');
    const bare = await gw.send('GET /open/x HTTP/1.1');
    expect(bare.head).not.toContain('access-control-');
  });

  it('echoes the origin with Access-Control-Allow-Credentials when credentials are allowed', async () => {
    const pre = await gw.send('OPTIONS /cookies HTTP/1.1', preflight('https://app.example.com', 'POST'));
    expect(pre.status).toBe(204);
    expect(pre.head).toContain('access-control-allow-origin: https://app.example.com');
    expect(pre.head).toContain('access-control-allow-credentials: true');
    expect(pre.head).toContain('vary: origin');
  });

  it('routes the preflight of a route without CORS like any OPTIONS request: to its upstream, or not found', async () => {
    const forwarded = await gw.send('OPTIONS /plain HTTP/1.1', preflight('https://app.example.com'));
    expect(forwarded.status).toBe(200);
    expect(gw.arrivals.map((a) => a.method)).toEqual(['OPTIONS']);
    const notFound = await gw.send('OPTIONS /plain-get HTTP/1.1', preflight('https://app.example.com'));
    expect(notFound.code).toBe('ROUTE_NOT_FOUND');
  });
});
