// What a refused request attempted, recovered for its audit event from the bytes the parser saw.
import { describe, expect, it } from 'vitest';
import { attemptedFromPacket, attemptedTarget, MAX_TARGET, TRUNCATED } from '../../../src/proxy/attempted.js';

const from = (text: string, at: number) => attemptedFromPacket(Buffer.from(text, 'latin1'), at);

describe('the attempted request of a parser refusal', () => {
  it('is the request line holding the error, with its bad byte kept', () => {
    expect(from('GET /a\x7fb?x=1 HTTP/1.1\r\nHost: x\r\n\r\n', 6)).toEqual({ method: 'GET', path: '/a\x7fb', query: '?x=1' });
  });

  it('is the request whose header line is bad, not an earlier pipelined one', () => {
    const two = 'GET /ok HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nX\x01: y\r\n\r\n';
    expect(from(two, two.indexOf('\x01'))).toEqual({ method: 'GET', path: '/second', query: '' });
  });

  it('is the request whose head ended in bad framing, not the request pipelined after it', () => {
    const text = 'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\nGET /second HTTP/1.1\r\n\r\n';
    expect(from(text, text.indexOf('GET /second'))).toEqual({ method: 'POST', path: '/a', query: '' });
  });

  it('keeps an unknown method as sent', () => {
    expect(from('FOO /m HTTP/1.1\r\nHost: x\r\n\r\n', 1)).toEqual({ method: 'FOO', path: '/m', query: '' });
  });

  it('does not take a malformed header line for a request line', () => {
    expect(from('GET /h HTTP/1.1\r\nHost x\r\n\r\n', 21)).toEqual({ method: 'GET', path: '/h', query: '' });
  });

  it('finds the request line of an oversized head', () => {
    const text = `GET /big HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`;
    expect(from(text, 20_036)).toEqual({ method: 'GET', path: '/big', query: '' });
  });

  it('is unknown when the request line arrived in an earlier read', () => {
    expect(from('GET /ok HTTP/1.1\r\nHost: x\r\n\r\nX-Bad\x01: y\r\n\r\n', 34)).toBeUndefined();
    expect(attemptedFromPacket(undefined, undefined)).toBeUndefined();
  });

  it('bounds a long target and marks the cut', () => {
    const a = attemptedTarget(`/${'p'.repeat(3000)}?token=1`);
    expect(a.path).toHaveLength(MAX_TARGET + TRUNCATED.length);
    expect(a.path.endsWith(TRUNCATED)).toBe(true);
    expect(a.query).toBe('');
  });
});
