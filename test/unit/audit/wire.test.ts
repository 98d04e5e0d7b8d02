import { describe, expect, it } from 'vitest';
import { AuditWorker } from '../../../src/audit/offthread.js';
import { AuditRecorder } from '../../../src/audit/recorder.js';
import { appendSystem, decodeBatch, REQUEST, REQUEST_SAME, SYSTEM, type WireValue } from '../../../src/audit/wire.js';
import type { RequestContext } from '../../../src/core/context.js';
import type { Principal } from '../../../src/core/principal.js';
import { planFor, tmpDir } from '../../helpers/audit.js';
import { contextWith } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

/** An AuditWorker as the recorder sees it (take() and plan), without a thread behind it. */
function fakeWorker(take: () => WireValue[]): AuditWorker {
  const w = Object.create(AuditWorker.prototype) as AuditWorker;
  Object.defineProperty(w, 'plan', { value: planFor(tmpDir(), []) });
  Object.defineProperty(w, 'take', { value: take });
  return w;
}

const plan = await planFrom(`version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: reports, match: { path: "/r/**" }, public: true, audit: all }
`);
const route = plan.routes[0];
const principal: Principal = { subject: 'ci-bot', tenant: 'acme', roles: [], permissions: [], keyId: 'k1', via: 'apiKey' };
const ctx = (i: number, over: Parameters<typeof contextWith>[1] = {}): RequestContext => contextWith(plan, { route, principal, path: `/r/${i}`, requestId: `req-${i}`, clientIp: '10.0.0.1', ...over });

describe('audit wire batches', () => {
  it('sends a repeat of the previous request record in the short form and decodes it back in full', () => {
    const batch: WireValue[] = [];
    const r = new AuditRecorder(fakeWorker(() => batch));
    r.record(ctx(0), 200, 1);
    r.record(ctx(1, { tokens: 42 }), 200, 2);
    appendSystem(batch, 5, { type: 'key.revoked', keyId: 'k9' });
    r.record(ctx(2), 201, 3);
    r.record(ctx(3, { clientIp: '10.0.0.9' }), 200, 4);
    r.record(ctx(4, { code: 'PERMISSION_DENIED', permission: 'reports:read' }), 403, 5);
    const tags = [];
    for (let i = 0; i < batch.length; i += batch[i] === REQUEST ? 20 : batch[i] === REQUEST_SAME ? 8 : 5) tags.push(batch[i]);
    expect(tags).toEqual([REQUEST, REQUEST_SAME, SYSTEM, REQUEST_SAME, REQUEST, REQUEST]);
    const records = decodeBatch(batch);
    expect(records.map((x) => (x.kind === 0 ? [x.requestId, x.path, x.ip, x.subject, x.status, x.durationMs, x.allowed, x.code, x.tokens] : x.type))).toEqual([
      ['req-0', '/r/0', '10.0.0.1', 'ci-bot', 200, 1, true, null, null],
      ['req-1', '/r/1', '10.0.0.1', 'ci-bot', 200, 2, true, null, 42],
      'key.revoked',
      ['req-2', '/r/2', '10.0.0.1', 'ci-bot', 201, 3, true, null, null],
      ['req-3', '/r/3', '10.0.0.9', 'ci-bot', 200, 4, true, null, null],
      ['req-4', '/r/4', '10.0.0.1', 'ci-bot', 403, 5, false, 'PERMISSION_DENIED', null],
    ]);
  });

  it('starts every batch with a full request record', () => {
    const first: WireValue[] = [];
    const second: WireValue[] = [];
    let current = first;
    const r = new AuditRecorder(fakeWorker(() => current));
    r.record(ctx(0), 200, 1);
    current = second;
    r.record(ctx(1), 200, 1);
    expect(second[0]).toBe(REQUEST);
    expect(() => decodeBatch([REQUEST_SAME, 1, 'x', '/', 200, 1])).toThrow(/malformed/);
  });
});
