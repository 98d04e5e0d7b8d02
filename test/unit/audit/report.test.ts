import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditPipeline } from '../../../src/audit/pipeline.js';
import { buildReport, reportMarkdown } from '../../../src/audit/report.js';
import { planFor, requestRecord, tmpDir } from '../../helpers/audit.js';

async function sample(): Promise<string> {
  const dir = tmpDir();
  const file = path.join(dir, 'audit.ndjson');
  const p = new AuditPipeline(planFor(dir, [{ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'never' }]), { instance: 'r' });
  p.recordSystem({ type: 'policy.loaded', hash: 'abc123def4567890', files: ['p.yaml'], trigger: 'startup' });
  p.push(requestRecord(1));
  p.push(requestRecord(2, { allowed: false, code: 'AUTH_INVALID', subject: null, tenant: null, ip: '198.51.100.7', status: 401 }));
  p.push(requestRecord(3, { allowed: false, code: 'TENANT_MISMATCH', route: 'tenant-reports', status: 403 }));
  p.recordSystem({ type: 'lockout', ip: '198.51.100.7', untilMs: 1 });
  p.recordSystem({ type: 'key.created', keyId: 'k1', tenant: 'acme' });
  p.recordSystem({ type: 'key.revoked', keyId: 'k1' });
  p.recordSystem({ type: 'breaker.transition', upstream: 'app', target: 'http://t', from: 'CLOSED', to: 'OPEN' });
  p.recordSystem({ type: 'policy.rejected', errors: ['x'], trigger: 'watch' });
  await p.close();
  return file;
}

describe('audit report', () => {
  it('summarises access, authentication, change and availability events', async () => {
    const file = await sample();
    const r = buildReport([file], undefined);
    expect(r.events).toBe(9);
    expect(r.accessControl.byDecision).toEqual({ allowed: 1, denied: 2 });
    expect(r.accessControl.deniedByRoute).toEqual({ reports: 1, 'tenant-reports': 1 });
    expect(r.authentication.failuresByIp).toEqual({ '198.51.100.7': 1 });
    expect(r.authentication.lockouts).toEqual({ '198.51.100.7': 1 });
    expect(r.authentication.keysCreated).toHaveLength(1);
    expect(r.authentication.keysRevoked).toHaveLength(1);
    expect(r.changeManagement).toMatchObject({ policyLoaded: 1, policyRejected: 1 });
    expect(r.availability.breakerTransitions).toMatchObject([{ upstream: 'app', from: 'CLOSED', to: 'OPEN' }]);
    expect(r.chain.ok).toBe(true);
    const md = reportMarkdown(r);
    expect(md).toContain('app http://t: CLOSED → OPEN');
    expect(md).toContain('| TENANT_MISMATCH | 1 |');
  });

  it('lists cross-tenant passes by caller and target tenant, and health check transitions', async () => {
    const dir = tmpDir();
    const file = path.join(dir, 'audit.ndjson');
    const p = new AuditPipeline(planFor(dir, [{ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'never' }]), { instance: 'r' });
    const crossed = { type: 'tenant.crossed', requestId: 'q', route: 'reports', subject: 'support-op', keyId: 'support-op', callerTenant: 'vendor', targetTenant: 'acme', role: 'support' } as const;
    p.recordSystem(crossed);
    p.recordSystem(crossed);
    p.recordSystem({ ...crossed, subject: 'root', callerTenant: null, targetTenant: 'globex' });
    p.recordSystem({ type: 'upstream.health', upstream: 'app', target: 'http://t', from: 'healthy', to: 'unhealthy', reason: 'status 503' });
    await p.close();
    const r = buildReport([file], undefined);
    expect(r.accessControl.crossTenant).toEqual({ 'support-op (vendor) → acme': 2, 'root (no tenant) → globex': 1 });
    expect(r.availability.healthTransitions).toMatchObject([{ upstream: 'app', target: 'http://t', to: 'unhealthy', reason: 'status 503' }]);
    const md = reportMarkdown(r);
    expect(md).toContain('| support-op (vendor) → acme | 2 |');
    expect(md).toContain('app http://t: unhealthy (status 503)');
  });

  it('counts only events inside --since, and shows a broken chain', async () => {
    const file = await sample();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    lines[0] = lines[0]!.replace(/"time":"[^"]+"/, '"time":"2001-01-01T00:00:00.000Z"');
    writeFileSync(file, `${lines.join('\n')}\n`);
    const r = buildReport([file], 86_400_000);
    expect(r.events).toBe(8);
    expect(r.changeManagement.policyLoaded).toBe(0);
    expect(r.chain.ok).toBe(false);
    expect(reportMarkdown(r)).toContain(`BROKEN at ${file}:1 (edited`);
  });
});
