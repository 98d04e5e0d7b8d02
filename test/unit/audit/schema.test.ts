import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { auditEventJsonSchema, auditEventSchema } from '../../../src/audit/event-schema.js';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { planFor, requestRecord, tmpDir } from '../../helpers/audit.js';

describe('audit event schema', () => {
  it('is published in schemas/audit-event.v1.json and that file is not stale', () => {
    const committed = JSON.parse(readFileSync(new URL('../../../schemas/audit-event.v1.json', import.meta.url), 'utf8')) as unknown;
    // Regenerate: npm run build && node -e "import('./dist/audit/event-schema.js').then(m=>console.log(JSON.stringify(m.auditEventJsonSchema(),null,2)))" > schemas/audit-event.v1.json
    expect(committed).toEqual(auditEventJsonSchema());
  });

  it('accepts every event the pipeline writes, request and system, chained or not', async () => {
    for (const chain of [true, false]) {
      const dir = tmpDir();
      const file = path.join(dir, 'a.ndjson');
      const p = new AuditPipeline(planFor(dir, [{ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'never' }], chain), { instance: 'schema' });
      p.push(requestRecord(1));
      p.push(requestRecord(2, { allowed: false, code: 'TENANT_MISMATCH', subject: null, tenant: null, keyId: null, via: null, route: null, status: 403 }));
      p.push(requestRecord(3, { door: 'nginx' }));
      p.recordSystem({ type: 'breaker.transition', upstream: 'app', target: 'http://x', from: 'CLOSED', to: 'OPEN' });
      p.recordSystem({ type: 'store.recovered' });
      await p.close();
      const lines = readFileSync(file, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(5);
      for (const l of lines) expect(() => auditEventSchema.parse(JSON.parse(l))).not.toThrow();
      expect(lines.every((l) => l.includes('"chain"') === chain)).toBe(true);
      expect(readdirSync(dir)).toContain('a.ndjson');
    }
  });
});
