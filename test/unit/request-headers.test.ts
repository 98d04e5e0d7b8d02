import { describe, expect, it } from 'vitest';
import { arrivalHeaders, firstHeader } from '../../src/request-headers.js';

describe('request headers from rawHeaders', () => {
  it('finds the headers the server needs whatever their case', () => {
    const h = arrivalHeaders(['HOST', 'api.example.com', 'X-Request-ID', 'abc', 'TraceParent', 'tp', 'Content-Length', '12', 'x-forwarded-for', '10.0.0.1']);
    expect(h).toEqual({ host: 'api.example.com', forwardedFor: '10.0.0.1', requestId: 'abc', traceparent: 'tp', contentLength: '12', chunked: false, badFraming: false });
  });

  it('joins repeated X-Forwarded-For, X-Request-Id and traceparent as Node would, and keeps the first Host', () => {
    const h = arrivalHeaders([
      'Host',
      'a',
      'host',
      'b',
      'X-Forwarded-For',
      '1.1.1.1',
      'x-forwarded-for',
      '2.2.2.2',
      'x-request-id',
      'one',
      'X-Request-Id',
      'two',
      'traceparent',
      't1',
      'traceparent',
      't2',
    ]);
    expect(h.host).toBe('a');
    expect(h.forwardedFor).toBe('1.1.1.1, 2.2.2.2');
    expect(h.requestId).toBe('one, two');
    expect(h.traceparent).toBe('t1, t2');
  });

  it('notices a Transfer-Encoding in any case and leaves absent headers undefined', () => {
    expect(arrivalHeaders(['Transfer-ENCODING', 'chunked'])).toEqual({
      host: undefined,
      forwardedFor: undefined,
      requestId: undefined,
      traceparent: undefined,
      contentLength: undefined,
      chunked: true,
      badFraming: false,
    });
  });

  it('flags every Transfer-Encoding framing but one line of exactly "chunked" as bad', () => {
    const bad = [
      ['Transfer-Encoding', 'gzip, chunked'],
      ['Transfer-Encoding', 'chunked, chunked'],
      ['Transfer-Encoding', 'identity'],
      ['Transfer-Encoding', ''],
      ['Transfer-Encoding', 'chunked', 'Transfer-Encoding', 'chunked'],
      ['Transfer-Encoding', 'gzip', 'transfer-encoding', 'chunked'],
      ['Transfer-Encoding', 'chunked', 'Content-Length', '5'],
      ['Content-Length', '5', 'Transfer-Encoding', 'chunked'],
    ];
    for (const raw of bad) expect(arrivalHeaders(raw).badFraming, JSON.stringify(raw)).toBe(true);
    for (const ok of [['Transfer-Encoding', 'chunked'], ['transfer-encoding', 'CHUNKED'], ['Content-Length', '5'], []]) {
      expect(arrivalHeaders(ok).badFraming, JSON.stringify(ok)).toBe(false);
    }
  });

  it('does not mistake a header of the same length for one it looks for', () => {
    const h = arrivalHeaders(['x-forwarded-fox', 'no', 'content-lengtx', '1', 'trace-parent', 'x']);
    expect(h.forwardedFor).toBeUndefined();
    expect(h.contentLength).toBeUndefined();
    expect(h.traceparent).toBeUndefined();
  });

  it('returns the first value of a named header, case-insensitively', () => {
    expect(firstHeader(['X-Api-Key', 'k1', 'x-api-key', 'k2'], 'x-api-key')).toBe('k1');
    expect(firstHeader(['Authorization', 'Bearer t'], 'authorization')).toBe('Bearer t');
    expect(firstHeader(['x-api-kez', 'no'], 'x-api-key')).toBeUndefined();
  });
});
