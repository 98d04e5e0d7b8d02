import { describe, expect, it } from 'vitest';
import { deny } from '../../../src/core/reasons.js';
import { grpcRefusal, grpcTimeoutMs, isGrpc } from '../../../src/h2/grpc.js';

describe('gRPC refusals', () => {
  it.each([
    ['AUTH_MISSING', 16],
    ['AUTH_INVALID', 16],
    ['PERMISSION_DENIED', 7],
    ['IP_DENIED', 7],
    ['RATE_LIMITED', 8],
    ['CONCURRENCY_EXCEEDED', 8],
    ['BODY_TOO_LARGE', 8],
    ['BREAKER_OPEN', 14],
    ['UPSTREAM_ERROR', 14],
    ['STORE_UNAVAILABLE', 14],
    ['UPSTREAM_TIMEOUT', 4],
    ['ROUTE_NOT_FOUND', 12],
    ['BAD_REQUEST', 3],
    ['GATEWAY_ERROR', 13],
  ] as const)('answers %s with grpc-status %i, HTTP 200', (code, status) => {
    const head = grpcRefusal(deny(code), 'rid');
    expect(head[':status']).toBe(200);
    expect(head['grpc-status']).toBe(status);
    expect(head['content-type']).toBe('application/grpc');
  });

  it('names the reason code in grpc-message, percent-encoding only what gRPC clients decode', () => {
    expect(grpcRefusal(deny('BAD_REQUEST', 'bad 100% "ü"'), 'rid')['grpc-message']).toBe('BAD_REQUEST: bad 100%25 "%C3%BC"');
  });
});

describe('grpc-timeout', () => {
  it('reads every unit in milliseconds', () => {
    expect(grpcTimeoutMs('2H')).toBe(7_200_000);
    expect(grpcTimeoutMs('3M')).toBe(180_000);
    expect(grpcTimeoutMs('5S')).toBe(5_000);
    expect(grpcTimeoutMs('250m')).toBe(250);
    expect(grpcTimeoutMs('1500u')).toBe(2);
    expect(grpcTimeoutMs('10n')).toBe(1);
  });

  it('ignores a missing or malformed value', () => {
    for (const v of [undefined, '', 'S', '10', '10x', '-5S', '123456789S', '1.5S']) expect(grpcTimeoutMs(v)).toBeUndefined();
  });
});

describe('isGrpc', () => {
  it('recognises application/grpc and its +proto/+json forms, in any case', () => {
    expect(isGrpc('application/grpc')).toBe(true);
    expect(isGrpc('application/grpc+proto')).toBe(true);
    expect(isGrpc('Application/GRPC+json')).toBe(true);
    expect(isGrpc('application/json')).toBe(false);
    expect(isGrpc(undefined)).toBe(false);
  });
});
