import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AuditPlan, SinkConfig } from '../../src/audit/compile.js';
import { SECRET_NAMES } from '../../src/audit/compile.js';
import type { RequestRecord } from '../../src/audit/event.js';

export function tmpDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'portcullis-audit-'));
}

export function planFor(dir: string, sinks: SinkConfig[], chain = true): AuditPlan {
  return { chain, sinks, spoolDir: path.join(dir, 'spool'), redact: SECRET_NAMES, fingerprint: 'test' };
}

export function requestRecord(i: number, over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    kind: 0,
    time: Date.now(),
    requestId: `req-${i}`,
    method: 'GET',
    path: `/v1/reports/${i}`,
    route: 'reports',
    ip: '10.0.0.1',
    subject: 'ci-bot',
    tenant: 'acme',
    keyId: 'ci-bot',
    via: 'apiKey',
    allowed: true,
    code: null,
    permission: null,
    shadow: null,
    status: 200,
    durationMs: 1.23456,
    door: null,
    ...over,
  };
}
