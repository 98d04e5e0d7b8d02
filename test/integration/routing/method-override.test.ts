// Method-override headers through the real gateway and a real upstream. Frameworks that honour
// X-HTTP-Method-Override / X-HTTP-Method / X-Method-Override serve the request as the method they
// name, so the gateway either removes them (the default) or routes and authorizes that method.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashApiKey } from '../../../src/authn/api-key.js';
import { type Gateway, namesOf, startGateway, valuesOf } from '../../helpers/gateway.js';

const READER = 'reader-key-0123456789';
const WRITER = 'writer-key-0123456789';
const DELETER = 'deleter-key-0123456789';

let g: Gateway;
/** The same routes, none opting in. */
let plain: Gateway;

const OVERRIDE_NAMES = ['x-http-method-override', 'x-http-method', 'x-method-override'];

const policy = (optIn: boolean) => (upstream: string) =>
  `version: 1
upstreams: { app: { url: "${upstream}" } }
authentication:
  apiKeys:
    keys:
      - { id: reader, hash: "${hashApiKey(READER)}", roles: [reader] }
      - { id: writer, hash: "${hashApiKey(WRITER)}", roles: [writer] }
      - { id: deleter, hash: "${hashApiKey(DELETER)}", roles: [deleter] }
roles:
  reader: { permissions: ["items:read"] }
  writer: { permissions: ["legacy:write"] }
  deleter: { permissions: ["legacy:delete"] }
routes:
  - { name: items-read, match: { methods: [GET], path: "/items/{id}" }, require: ["items:read"] }
  - { name: items-delete, match: { methods: [DELETE], path: "/items/{id}" }, require: ["items:delete"] }
  - { name: legacy-write, match: { methods: [POST], path: "/legacy/{id}" }, require: ["legacy:write"] }
  - { name: legacy-delete, match: { methods: [DELETE, PUT], path: "/legacy/{id}" }, require: ["legacy:delete"]${optIn ? ', methodOverride: [DELETE]' : ''} }
`;

beforeAll(async () => {
  g = await startGateway(policy(true));
  plain = await startGateway(policy(false));
});

afterAll(async () => {
  await g?.stop();
  await plain?.stop();
});

describe('method-override headers where no route opts in', () => {
  it('a caller allowed GET cannot have the upstream serve DELETE: every override header, in any case, any count and "_" spelling, is removed', async () => {
    const res = await plain.send('GET /items/1 HTTP/1.1', [
      `X-Api-Key: ${READER}`,
      'X-HTTP-Method-Override: DELETE',
      'x-http-method-override: DELETE',
      'X-HTTP-Method: DELETE',
      'X-Method-Override: DELETE',
      'X_HTTP_Method_Override: DELETE',
      'x-method_override: DELETE',
    ]);
    expect(res.status).toBe(200);
    const [arrival] = plain.arrivals;
    expect(arrival!.method).toBe('GET');
    for (const name of namesOf(arrival!)) expect(OVERRIDE_NAMES).not.toContain(name.replace(/_/g, '-'));
  });

  it('removes them on a POST too: a caller allowed POST is served POST', async () => {
    const res = await plain.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${WRITER}`, 'X-HTTP-Method-Override: DELETE', 'Content-Length: 0']);
    expect(res.status).toBe(200);
    expect(plain.arrivals[0]!.method).toBe('POST');
    expect(valuesOf(plain.arrivals[0]!, 'x-http-method-override')).toEqual([]);
  });
});

describe('method-override headers on a route that does not opt in, where another route does', () => {
  it('does not route by the override: the reader is served GET, without the header', async () => {
    const res = await g.send('GET /items/1 HTTP/1.1', [`X-Api-Key: ${READER}`, 'X-HTTP-Method-Override: DELETE']);
    expect(res.status).toBe(200);
    expect(g.arrivals[0]!.method).toBe('GET');
    expect(valuesOf(g.arrivals[0]!, 'x-http-method-override')).toEqual([]);
  });
});

describe('a route that opts in (methodOverride)', () => {
  it('authorizes the overridden method, not the wire method: a caller allowed POST cannot DELETE', async () => {
    const res = await g.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${WRITER}`, 'X-HTTP-Method-Override: DELETE', 'Content-Length: 0']);
    expect(res.status).toBe(403);
    expect(res.code).toBe('PERMISSION_DENIED');
    expect(g.arrivals).toEqual([]);
  });

  it('lets a caller allowed DELETE through, and forwards the override the upstream will act on', async () => {
    const res = await g.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${DELETER}`, 'X-HTTP-Method-Override: delete', 'Content-Length: 0']);
    expect(res.status).toBe(200);
    const [arrival] = g.arrivals;
    expect(arrival!.method).toBe('POST');
    expect(valuesOf(arrival!, 'x-http-method-override')).toEqual(['delete']);
  });

  it('removes an override to a method the route does not list, and routes by the wire method', async () => {
    const res = await g.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${WRITER}`, 'X-HTTP-Method-Override: PUT', 'Content-Length: 0']);
    expect(res.status).toBe(200);
    const [arrival] = g.arrivals;
    expect(arrival!.method).toBe('POST');
    expect(valuesOf(arrival!, 'x-http-method-override')).toEqual([]);
  });

  it.each([
    [['X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: PUT'], 'two different methods'],
    [['X-HTTP-Method-Override: DELETE', 'X-HTTP-Method-Override: DELETE'], 'one header twice'],
    [['X-HTTP-Method-Override: DELETE', 'X_HTTP_Method_Override: DELETE'], 'a header and its "_" look-alike'],
    [['X-HTTP-Method-Override: DELETE, PUT'], 'a list'],
    [['X-HTTP-Method-Override: DEL ETE'], 'not a method token'],
  ])('answers 400 for %j (%s)', async (lines) => {
    const res = await g.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${DELETER}`, ...lines, 'Content-Length: 0']);
    expect(res.status).toBe(400);
    expect(res.code).toBe('BAD_REQUEST');
    expect(g.arrivals).toEqual([]);
  });

  it('answers 400 to an override on a method other than POST, which frameworks would not honour', async () => {
    const res = await g.send('GET /legacy/1 HTTP/1.1', [`X-Api-Key: ${DELETER}`, 'X-HTTP-Method-Override: DELETE']);
    expect(res.status).toBe(400);
    expect(g.arrivals).toEqual([]);
  });

  it('accepts the same method named by two different override headers', async () => {
    const res = await g.send('POST /legacy/1 HTTP/1.1', [`X-Api-Key: ${DELETER}`, 'X-HTTP-Method-Override: DELETE', 'X-HTTP-Method: DELETE', 'Content-Length: 0']);
    expect(res.status).toBe(200);
    expect(valuesOf(g.arrivals[0]!, 'x-http-method')).toEqual(['DELETE']);
  });
});
