import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DecisionInput, DecisionResult } from '../../../src/decisions/decide.js';
import { GrpcDecisionServer, peerAddress, rpcCodeOf } from '../../../src/decisions/grpc.js';
import { checkRequest, type ExtAuthzClient, extAuthzClient } from '../../helpers/ext-authz.js';

const ALLOW: DecisionResult = {
  allowed: true,
  status: 200,
  code: undefined,
  upstreamHeaders: [
    ['x-auth-subject', 'svc-reports'],
    ['x-auth-tenant', 'acme'],
  ],
  removeHeaders: ['x-api-key'],
  responseHeaders: [],
  body: '',
  requestId: 'r-allow',
  metadata: { subject: 'svc-reports', tenant: 'acme', route: 'reports' },
};

function denied(status: number, code: DecisionResult['code'], responseHeaders: [string, string][] = []): DecisionResult {
  return { allowed: false, status, code, upstreamHeaders: [], removeHeaders: [], responseHeaders, body: `{"code":"${code}"}`, requestId: 'r-deny', metadata: {} };
}

/** A DecisionService stand-in that answers what the test scripts and keeps what it was asked. */
const seen: DecisionInput[] = [];
let answer: (input: DecisionInput) => DecisionResult | Promise<DecisionResult> = () => ALLOW;
const server = new GrpcDecisionServer({
  decisions: {
    decide: (input) => {
      seen.push(input);
      return answer(input);
    },
  },
  logger: pino({ level: 'silent' }),
});
let client: ExtAuthzClient;

beforeAll(async () => {
  client = extAuthzClient(await server.listen('127.0.0.1', 0));
});
afterAll(async () => {
  client.close();
  await server.shutdown(1_000);
});

describe('the Envoy ext_authz gRPC door', () => {
  it('hands the core the request as Envoy describes it: undecoded path with query, host, headers without pseudo-headers, client and peer', async () => {
    seen.length = 0;
    answer = () => ALLOW;
    await client.check(checkRequest('POST', '/v1/a%2Fb/../c?x=1%20', { 'x-api-key': 'k1', accept: 'a, b' }, { host: 'api.acme.test', client: '198.51.100.4' }));
    expect(seen).toEqual([
      {
        door: 'envoy-grpc',
        method: 'POST',
        target: '/v1/a%2Fb/../c?x=1%20',
        host: 'api.acme.test',
        rawHeaders: ['x-api-key', 'k1', 'accept', 'a, b'],
        peer: '127.0.0.1',
        clientAddress: '198.51.100.4',
      },
    ]);
  });

  it('reads the headers from header_map when Envoy sends raw headers (encode_raw_headers), one entry per line', async () => {
    seen.length = 0;
    answer = () => ALLOW;
    const req = checkRequest('GET', '/v1/reports/q1');
    const http = req.attributes?.request?.http;
    if (http === undefined) throw new Error('no http');
    delete http.headers;
    http.header_map = {
      headers: [
        { key: ':path', raw_value: Buffer.from('/v1/reports/q1') },
        { key: 'x-api-key', raw_value: Buffer.from('k1') },
        { key: 'accept', raw_value: Buffer.from('a') },
        { key: 'accept', raw_value: Buffer.from('b') },
      ],
    };
    await client.check(req);
    expect(seen[0]?.rawHeaders).toEqual(['x-api-key', 'k1', 'accept', 'a', 'accept', 'b']);
  });

  it('leaves what Envoy did not send empty, for the core to refuse', async () => {
    seen.length = 0;
    await client.check({});
    expect(seen[0]).toEqual({ door: 'envoy-grpc', method: '', target: '', host: '', rawHeaders: [], peer: '127.0.0.1' });
  });

  it('allows with code 0, identity headers set (append false), credentials to remove and dynamic metadata', async () => {
    answer = () => ALLOW;
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.status).toEqual({ code: 0 });
    expect(res.denied_response).toBeUndefined();
    expect(res.ok_response).toEqual({
      headers: [
        { header: { key: 'x-auth-subject', value: 'svc-reports' }, append: { value: false } },
        { header: { key: 'x-auth-tenant', value: 'acme' }, append: { value: false } },
      ],
      headers_to_remove: ['x-api-key'],
    });
    expect(res.ok_response?.response_headers_to_add).toBeUndefined();
    expect(res.dynamic_metadata).toEqual({
      fields: { subject: { stringValue: 'svc-reports' }, tenant: { stringValue: 'acme' }, route: { stringValue: 'reports' } },
    });
  });

  it("hands an allowed request's RateLimit headers to Envoy for the client's response", async () => {
    answer = () => ({ ...ALLOW, responseHeaders: [['ratelimit', 'limit=10, remaining=9, reset=1']] });
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.ok_response?.response_headers_to_add).toEqual([{ header: { key: 'ratelimit', value: 'limit=10, remaining=9, reset=1' }, append: { value: false } }]);
  });

  it('answers a promise from the core as it answers a value', async () => {
    answer = async () => denied(503, 'STORE_UNAVAILABLE', [['retry-after', '1']]);
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.status).toEqual({ code: 14, message: 'STORE_UNAVAILABLE' });
    expect(res.denied_response?.status).toEqual({ code: 503 });
  });

  it.each([
    [401, 'AUTH_MISSING', 16, [['www-authenticate', 'Bearer realm="api"']]],
    [403, 'PERMISSION_DENIED', 7, []],
    [404, 'ROUTE_NOT_FOUND', 5, []],
    [400, 'BAD_REQUEST', 3, []],
    [
      429,
      'RATE_LIMITED',
      8,
      [
        ['retry-after', '7'],
        ['ratelimit-policy', '10;w=60'],
        ['ratelimit', 'limit=10, remaining=0, reset=7'],
      ],
    ],
    [503, 'IDP_UNAVAILABLE', 14, [['retry-after', '5']]],
  ] as const)('denies %i %s with google.rpc code %i and the status, problem body and headers in denied_response', async (status, code, rpc, headers) => {
    answer = () =>
      denied(
        status,
        code,
        headers.map(([n, v]) => [n, v]),
      );
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.status).toEqual({ code: rpc, message: code });
    expect(res.ok_response).toBeUndefined();
    expect(res.dynamic_metadata).toBeUndefined();
    expect(res.denied_response).toEqual({
      status: { code: status },
      body: `{"code":"${code}"}`,
      headers: [
        ...headers.map(([key, value]) => ({ header: { key, value }, append: { value: false } })),
        { header: { key: 'content-type', value: 'application/problem+json' }, append: { value: false } },
      ],
    });
  });

  it('sends the metadata it has on a denial too, for Envoy access logs', async () => {
    answer = () => ({ ...denied(429, 'QUOTA_EXCEEDED'), metadata: { tenant: 'acme', route: 'reports' } });
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.dynamic_metadata).toEqual({ fields: { tenant: { stringValue: 'acme' }, route: { stringValue: 'reports' } } });
  });

  it('contains a fault in the decision: INTERNAL and a 500 problem, and the door keeps answering', async () => {
    answer = () => {
      throw new Error('bug');
    };
    const res = await client.check(checkRequest('GET', '/v1/reports/q1'));
    expect(res.status).toEqual({ code: 13, message: 'GATEWAY_ERROR' });
    expect(res.denied_response?.status).toEqual({ code: 500 });
    expect(JSON.parse(res.denied_response?.body ?? '')).toMatchObject({ code: 'GATEWAY_ERROR', status: 500 });
    answer = () => Promise.reject(new Error('async bug'));
    expect((await client.check(checkRequest('GET', '/'))).status.code).toBe(13);
    answer = () => ALLOW;
    expect((await client.check(checkRequest('GET', '/'))).status.code).toBe(0);
  });

  it('maps every other status to a code Envoy treats as a denial', () => {
    expect(rpcCodeOf(413)).toBe(3);
    expect(rpcCodeOf(431)).toBe(3);
    expect(rpcCodeOf(500)).toBe(13);
    expect(rpcCodeOf(502)).toBe(14);
    expect(rpcCodeOf(504)).toBe(14);
  });

  it('reads the peer address out of the spellings grpc-js gives it', () => {
    expect(peerAddress('10.0.0.7:53124')).toBe('10.0.0.7');
    expect(peerAddress('::ffff:10.0.0.7:53124')).toBe('::ffff:10.0.0.7');
    expect(peerAddress('::1:40000')).toBe('::1');
    expect(peerAddress('unknown')).toBe('unknown');
  });
});

describe('shutting the gRPC door down', () => {
  it('lets a check in flight finish, then refuses new connections', async () => {
    let arrived!: () => void;
    const inDecision = new Promise<void>((r) => (arrived = r));
    const slow = new GrpcDecisionServer({
      decisions: {
        decide: () => {
          arrived();
          return new Promise((resolve) => setTimeout(() => resolve(ALLOW), 300));
        },
      },
      logger: pino({ level: 'silent' }),
    });
    const c = extAuthzClient(await slow.listen('127.0.0.1', 0));
    const inflight = c.check(checkRequest('GET', '/v1/reports/q1'));
    await inDecision;
    await slow.shutdown(10_000);
    expect((await inflight).status.code).toBe(0);
    await expect(c.check(checkRequest('GET', '/'))).rejects.toMatchObject({ code: 14 });
    c.close();
  });
});
