import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, resolveLevel } from '../../../src/observability/logger.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[]; text: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return {
    stream,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l)),
  };
}

const SECRETS = [
  'Bearer eyJhbGciOiJSUzI1NiJ9.c2VjcmV0.sig',
  'session=abc123secret',
  'pk_live_0123456789',
  'sid=topsecret; Path=/',
  'eyJ.forwarded.jwt',
  'Basic cHJveHk6cGFzcw==',
  'hunter2',
  'tok-zzz',
  'shh-secret',
  'k-inner',
];

describe('createLogger', () => {
  it('censors credential headers and secret-named keys so no secret reaches the output', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out.stream });
    log.info(
      {
        req: {
          method: 'GET',
          url: '/v1/reports',
          headers: {
            authorization: SECRETS[0],
            cookie: SECRETS[1],
            'x-api-key': SECRETS[2],
            'x-auth-jwt': SECRETS[4],
            'proxy-authorization': SECRETS[5],
            accept: 'application/json',
          },
        },
        res: { statusCode: 200, headers: { 'set-cookie': SECRETS[3] } },
        password: SECRETS[6],
        user: { token: SECRETS[7], secret: SECRETS[8] },
        client: { apiKey: SECRETS[9] },
      },
      'request',
    );
    log.flush();
    const text = out.text();
    for (const s of SECRETS) expect(text).not.toContain(s);
    const [line] = out.lines();
    const req = line!.req as { headers: Record<string, string> };
    expect(req.headers.authorization).toBe('[REDACTED]');
    expect(req.headers['x-api-key']).toBe('[REDACTED]');
    expect(req.headers.accept).toBe('application/json');
    expect((line!.user as Record<string, string>).token).toBe('[REDACTED]');
    expect(line!.msg).toBe('request');
  });

  it('censors a configured API key header as well', () => {
    const out = capture();
    const log = createLogger({ level: 'info', destination: out.stream, redactHeaders: ['X-Tenant-Key'] });
    log.info({ headers: { 'x-tenant-key': 'pk_custom_secret' } }, 'in');
    expect(out.text()).not.toContain('pk_custom_secret');
    expect(out.text()).toContain('[REDACTED]');
  });

  it('takes its level from LOG_LEVEL and refuses an unknown level', () => {
    const before = process.env.LOG_LEVEL;
    try {
      process.env.LOG_LEVEL = 'warn';
      const out = capture();
      const log = createLogger({ destination: out.stream });
      log.info('hidden');
      log.warn('shown');
      expect(out.lines().map((l) => l.msg)).toEqual(['shown']);
      expect(() => resolveLevel('loud')).toThrow(/LOG_LEVEL must be one of/);
    } finally {
      if (before === undefined) delete process.env.LOG_LEVEL;
      else process.env.LOG_LEVEL = before;
    }
  });
});
