// `audit report`: a compliance summary of audit files, grouped under the headings reviewers look
// for. Counts only; it never prints an event's path or query (those stay in the files).
import { readFileSync } from 'node:fs';
import { type VerifyOptions, type VerifyResult, verifyFiles } from './verify.js';

type Tally = Record<string, number>;

export interface AuditReport {
  readonly since: string | null;
  readonly events: number;
  readonly from: string | null;
  readonly to: string | null;
  readonly accessControl: {
    byDecision: Tally;
    byCode: Tally;
    deniedByRoute: Tally;
    deniedByTenant: Tally;
    /** Passes of a tenant check by a cross-tenant role: "subject (caller tenant) → target tenant". */
    crossTenant: Tally;
  };
  readonly authentication: { failuresByIp: Tally; failuresBySubject: Tally; lockouts: Tally; keysCreated: string[]; keysRevoked: string[] };
  readonly changeManagement: { policyLoaded: number; policyRejected: number; changes: { time: string; type: string; hash?: string | undefined; trigger?: string | undefined }[] };
  readonly availability: {
    breakerTransitions: { time: string; upstream: string; target: string; from: string; to: string }[];
    healthTransitions: { time: string; upstream: string; target: string; to: string; reason: string }[];
    storeDegraded: number;
    storeRecovered: number;
    sinkFailed: Tally;
    upstreamErrors: number;
  };
  readonly chain: VerifyResult;
  /** False when no event carries a chain (written with chain: false): then there is nothing to verify. */
  readonly chained: boolean;
}

const AUTH_FAIL = new Set(['AUTH_MISSING', 'AUTH_INVALID', 'AUTH_EXPIRED', 'LOCKED_OUT']);
const inc = (t: Tally, k: string | null | undefined) => {
  const key = k ?? '-';
  t[key] = (t[key] ?? 0) + 1;
};

interface Ev {
  time: string;
  type: string;
  request: { route: string | null; ip: string } | null;
  actor: { subject: string | null; tenant: string | null } | null;
  decision: { allowed: boolean; code: string | null } | null;
  detail: Record<string, string> | null;
}

export function buildReport(files: readonly string[], sinceMs: number | undefined, now = Date.now(), verify: VerifyOptions = {}): AuditReport {
  const cutoff = sinceMs === undefined ? undefined : new Date(now - sinceMs).toISOString();
  const r: AuditReport = {
    since: cutoff ?? null,
    events: 0,
    from: null,
    to: null,
    accessControl: { byDecision: {}, byCode: {}, deniedByRoute: {}, deniedByTenant: {}, crossTenant: {} },
    authentication: { failuresByIp: {}, failuresBySubject: {}, lockouts: {}, keysCreated: [], keysRevoked: [] },
    changeManagement: { policyLoaded: 0, policyRejected: 0, changes: [] },
    availability: { breakerTransitions: [], healthTransitions: [], storeDegraded: 0, storeRecovered: 0, sinkFailed: {}, upstreamErrors: 0 },
    chain: verifyFiles(files, verify),
    chained: true,
  };
  let chained = false;
  let from: string | null = null;
  let to: string | null = null;
  let count = 0;
  for (const file of files) {
    for (const text of readFileSync(file, 'utf8').split('\n')) {
      if (text.trim() === '') continue;
      let e: Ev;
      try {
        e = JSON.parse(text) as Ev;
      } catch {
        continue;
      }
      if ((e as { chain?: unknown }).chain !== undefined) chained = true;
      if (cutoff !== undefined && e.time < cutoff) continue;
      count++;
      if (from === null || e.time < from) from = e.time;
      if (to === null || e.time > to) to = e.time;
      const d = e.detail ?? {};
      switch (e.type) {
        case 'request': {
          const allowed = e.decision?.allowed ?? false;
          const code = e.decision?.code ?? null;
          inc(r.accessControl.byDecision, allowed ? 'allowed' : 'denied');
          inc(r.accessControl.byCode, code ?? 'OK');
          if (!allowed) {
            inc(r.accessControl.deniedByRoute, e.request?.route);
            inc(r.accessControl.deniedByTenant, e.actor?.tenant);
          }
          if (code !== null && AUTH_FAIL.has(code)) {
            inc(r.authentication.failuresByIp, e.request?.ip);
            inc(r.authentication.failuresBySubject, e.actor?.subject);
          }
          if (code === 'UPSTREAM_ERROR' || code === 'UPSTREAM_TIMEOUT') r.availability.upstreamErrors++;
          break;
        }
        case 'lockout':
          inc(r.authentication.lockouts, d.ip);
          break;
        case 'key.created':
          r.authentication.keysCreated.push(`${e.time} ${d.keyId}${d.tenant ? ` (tenant ${d.tenant})` : ''}`);
          break;
        case 'key.revoked':
          r.authentication.keysRevoked.push(`${e.time} ${d.keyId}`);
          break;
        case 'policy.loaded':
          r.changeManagement.policyLoaded++;
          r.changeManagement.changes.push({ time: e.time, type: 'loaded', hash: d.hash, trigger: d.trigger });
          break;
        case 'policy.rejected':
          r.changeManagement.policyRejected++;
          r.changeManagement.changes.push({ time: e.time, type: 'rejected', trigger: d.trigger });
          break;
        case 'breaker.transition':
          r.availability.breakerTransitions.push({ time: e.time, upstream: d.upstream ?? '', target: d.target ?? '', from: d.from ?? '', to: d.to ?? '' });
          break;
        case 'tenant.crossed':
          inc(r.accessControl.crossTenant, `${d.subject ?? '-'} (${d.callerTenant ?? 'no tenant'}) → ${d.targetTenant ?? '-'}`);
          break;
        case 'upstream.health':
          r.availability.healthTransitions.push({ time: e.time, upstream: d.upstream ?? '', target: d.target ?? '', to: d.to ?? '', reason: d.reason ?? '' });
          break;
        case 'store.degraded':
          r.availability.storeDegraded++;
          break;
        case 'store.recovered':
          r.availability.storeRecovered++;
          break;
        case 'sink.failed':
          inc(r.availability.sinkFailed, d.sink);
          break;
      }
    }
  }
  // Never-chained logs are reported, not failed; a log with some chained events is verified whole.
  const unchained = !chained && verify.key === undefined && verify.expectHead === undefined && verify.closed !== true;
  return { ...r, events: count, from, to, chained, ...(unchained ? { chain: { ok: true, events: r.chain.events } } : {}) };
}

const table = (t: Tally, head: string): string => {
  const rows = Object.entries(t).sort((a, b) => b[1] - a[1]);
  if (rows.length === 0) return '_none_\n';
  return `| ${head} | count |\n| --- | ---: |\n${rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n')}\n`;
};
const list = (items: readonly string[]): string => (items.length === 0 ? '_none_\n' : `${items.map((i) => `- ${i}`).join('\n')}\n`);

export function reportMarkdown(r: AuditReport): string {
  const c = r.chain;
  const cp = c.checkpoints;
  const signed = cp && cp.count > 0 ? `; last checkpoint seq ${cp.last!.seq} (${cp.verified ? 'signature verified' : 'signature not checked'}), ${cp.after} event(s) after it` : '';
  const warnings = (c.warnings ?? []).map((w) => `; warning: ${w}`).join('');
  const chain = !r.chained
    ? 'not chained (audit.chain: false)'
    : c.ok
      ? `intact (${c.events} events${c.head ? `, head seq ${c.head.seq} ${c.head.hash.slice(0, 16)}…` : ''}${signed})${warnings}`
      : `BROKEN at ${c.broken!.file}:${c.broken!.line} (${c.broken!.kind}: ${c.broken!.message})`;
  return `# Portcullis audit report

Period: ${r.from ?? '-'} to ${r.to ?? '-'}${r.since ? ` (since ${r.since})` : ''} · ${r.events} events · chain ${chain}

## Access control

### Decisions
${table(r.accessControl.byDecision, 'decision')}
### By reason code
${table(r.accessControl.byCode, 'code')}
### Denials by route
${table(r.accessControl.deniedByRoute, 'route')}
### Denials by tenant
${table(r.accessControl.deniedByTenant, 'tenant')}
### Cross-tenant access
${table(r.accessControl.crossTenant, 'caller → tenant')}
## Authentication

### Failures by client IP
${table(r.authentication.failuresByIp, 'ip')}
### Failures by subject
${table(r.authentication.failuresBySubject, 'subject')}
### Lockouts
${table(r.authentication.lockouts, 'ip')}
### Keys created
${list(r.authentication.keysCreated)}
### Keys revoked
${list(r.authentication.keysRevoked)}
## Change management

Policy loads: ${r.changeManagement.policyLoaded} · rejected: ${r.changeManagement.policyRejected}

${list(r.changeManagement.changes.map((x) => `${x.time} ${x.type}${x.hash ? ` ${x.hash.slice(0, 12)}` : ''}${x.trigger ? ` (${x.trigger})` : ''}`))}
## Availability

### Circuit breaker incidents
${list(r.availability.breakerTransitions.map((b) => `${b.time} ${b.upstream} ${b.target}: ${b.from} → ${b.to}`))}
### Health check transitions
${list(r.availability.healthTransitions.map((h) => `${h.time} ${h.upstream} ${h.target}: ${h.to} (${h.reason})`))}
Store degraded: ${r.availability.storeDegraded} · recovered: ${r.availability.storeRecovered} · upstream errors: ${r.availability.upstreamErrors}

### Audit sink failures
${table(r.availability.sinkFailed, 'sink')}
## Audit chain

${chain}
`;
}
