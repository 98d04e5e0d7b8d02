import { describe, expect, it } from 'vitest';
import { EventIds, type RequestRecord } from '../../../src/audit/event.js';
import { EventFormatter, jsonString } from '../../../src/audit/format.js';
import { canonicalJson } from '../../../src/canonical-json.js';
import { requestRecord } from '../../helpers/audit.js';

const AWKWARD = ['', 'plain', 'quote"d', 'back\\slash', 'tab\there', 'nul\u0000', 'del\u007f', 'é ü 漢字', '😀 pair', 'lone \ud83d high', 'lone \ude00 low', '\u2028\u2029', '/v1/a b?c=%22'];

describe('audit line formatting', () => {
  it('quotes every string exactly as JSON.stringify does', () => {
    for (const s of AWKWARD) expect(jsonString(s)).toBe(JSON.stringify(s));
  });

  it('builds the canonical JSON of each event, also when consecutive events share or change their parts', () => {
    const ids = new EventIds('fmt');
    const variants: Partial<RequestRecord>[] = [
      {},
      {},
      { subject: 'other', keyId: null, via: 'jwt' },
      { subject: 'other', keyId: null, via: 'jwt' },
      { allowed: false, code: 'PERMISSION_DENIED', permission: 'reports:read', status: 403 },
      { allowed: false, code: 'PERMISSION_DENIED', permission: 'reports:read', status: 403, ip: '10.9.9.9' },
      { route: null, method: 'POST', tenant: null, subject: null, keyId: null, via: null },
      { shadow: 'allow' },
      { upstreamPath: '/v2/things/a%20b' },
      { tokens: 1234 },
      ...AWKWARD.map((s) => ({ requestId: s, path: s, subject: s, route: s, ip: s, method: s, code: s })),
      {},
    ];
    const format = new EventFormatter();
    variants.forEach((over, i) => {
      const r = requestRecord(i, { time: 1_780_000_000_000 + (i >> 1), durationMs: i / 3, ...over });
      const id = ids.next(r.time);
      const [head, tail] = format.halves(r, id);
      const line = `${head}${tail}`;
      const event = JSON.parse(line) as Record<string, unknown>;
      expect(line).toBe(canonicalJson(event));
      expect(event).toMatchObject({
        id,
        request: { id: r.requestId, path: r.path, ip: r.ip, method: r.method, route: r.route, upstreamPath: r.upstreamPath ?? null },
        actor: { subject: r.subject, tenant: r.tenant, keyId: r.keyId, via: r.via },
        decision: { allowed: r.allowed, code: r.code, permission: r.permission, shadow: r.shadow },
        response: { status: r.status, tokens: r.tokens ?? null },
      });
    });
  });

  it('gives unique ids that sort by time, then by counter within a millisecond', () => {
    const ids = new EventIds('x');
    const got = [ids.next(5), ids.next(5), ids.next(6), ids.next(6), ids.next(1_780_000_000_000)];
    expect(new Set(got).size).toBe(got.length);
    expect([...got].sort()).toEqual(got);
    expect(got[0]).toBe('000000005-x-000000');
  });
});
