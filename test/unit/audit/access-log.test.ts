// The access log's hand-built line: pino's format, valid JSON whatever a client put in the path or
// a subject, escaped like every other log line, and sampled as asked.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { AccessLog } from '../../../src/audit/access-log.js';
import { createLogger } from '../../../src/observability/logger.js';
import { contextWith } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(
        ...chunk
          .toString()
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  return { lines, stream };
}

const plan = () =>
  planFrom(`version: 1
upstreams: { app: { url: http://127.0.0.1:1 } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`);

describe('the access log line', () => {
  it('is one JSON line in pino format that survives quotes, newlines and bidi characters', async () => {
    const { lines, stream } = capture();
    const log = new AccessLog(createLogger({ level: 'silent', destination: stream }), { sample: 1 });
    const pl = await plan();
    const ctx = contextWith(pl, { path: '/a"b\nc/\u202egpj.exe', requestId: 'r-1', clientIp: '10.0.0.9', code: 'PERMISSION_DENIED' });
    ctx.principal = { subject: 'eve"\u2028', tenant: undefined, roles: [], permissions: [], keyId: undefined, via: 'test' };
    log.record(ctx, 403, 1.23456);
    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toMatch(/[\u2028\u202e]/);
    expect(JSON.parse(lines[0]!)).toEqual({
      level: 30,
      time: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      pid: process.pid,
      name: 'portcullis',
      log: 'access',
      requestId: 'r-1',
      method: 'GET',
      path: '/a"b\nc/\u202egpj.exe',
      route: null,
      status: 403,
      code: 'PERMISSION_DENIED',
      durationMs: 1.235,
      ip: '10.0.0.9',
      subject: 'eve"\u2028',
      tenant: null,
      msg: 'request',
    });
  });

  it('logs the sampled share: a draw below the rate is logged, one at or above it is not', async () => {
    const { lines, stream } = capture();
    const draws = [0.05, 0.5, 0.09, 0.1];
    const log = new AccessLog(createLogger({ level: 'silent', destination: stream }), { sample: 0.1, random: () => draws.shift()! });
    const ctx = contextWith(await plan(), { path: '/x' });
    for (let i = 0; i < 4; i++) log.record(ctx, 200, 1);
    expect(lines).toHaveLength(2);
  });
});
