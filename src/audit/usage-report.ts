// `usage report`: requests, denials, metered tokens, latency percentiles and an estimated cost per
// tenant, from audit files. Exact where the audit trail is (every request event carries its tenant,
// decision, duration and the tokens charged); the latency percentiles are within 4% (a bounded
// histogram per tenant, so files of any size are read in constant memory per tenant).
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { LatencyHistogram } from '../observability/latency.js';

interface TenantUsageRow {
  readonly tenant: string;
  readonly requests: number;
  readonly allowed: number;
  readonly denied: number;
  readonly deniedByCode: Readonly<Record<string, number>>;
  readonly tokens: number;
  readonly latency: { readonly p50Ms: number; readonly p95Ms: number; readonly p99Ms: number };
  /** tokens / 1000 × the price; null without a price. */
  readonly cost: number | null;
}

export interface UsageReport {
  /** ISO time of the oldest event counted (the cut-off), or null: everything. */
  readonly since: string | null;
  readonly from: string | null;
  readonly to: string | null;
  readonly pricePer1kTokens: number | null;
  readonly tenants: readonly TenantUsageRow[];
}

interface Acc {
  requests: number;
  allowed: number;
  denied: number;
  deniedByCode: Record<string, number>;
  tokens: number;
  latency: LatencyHistogram;
}

interface RequestEvent {
  time: string;
  actor: { tenant: string | null } | null;
  decision: { allowed: boolean; code: string | null } | null;
  response: { durationMs: number; tokens?: number | null } | null;
}

/** Requests without a tenant are reported under "-". */
const NO_TENANT = '-';

export async function buildUsageReport(files: readonly string[], options: { sinceMs?: number | undefined; pricePer1kTokens?: number | undefined; now?: number }): Promise<UsageReport> {
  const cutoff = options.sinceMs === undefined ? undefined : new Date((options.now ?? Date.now()) - options.sinceMs).toISOString();
  const byTenant = new Map<string, Acc>();
  let from: string | null = null;
  let to: string | null = null;
  for (const file of files) {
    const lines = createInterface({ input: createReadStream(file, 'utf8'), crlfDelay: Infinity });
    for await (const line of lines) {
      if (!line.includes('"type":"request"')) continue;
      let e: RequestEvent;
      try {
        e = JSON.parse(line) as RequestEvent;
      } catch {
        continue; // a torn last line of a file still being written
      }
      if (cutoff !== undefined && e.time < cutoff) continue;
      if (from === null || e.time < from) from = e.time;
      if (to === null || e.time > to) to = e.time;
      const tenant = e.actor?.tenant ?? NO_TENANT;
      let a = byTenant.get(tenant);
      if (a === undefined) byTenant.set(tenant, (a = { requests: 0, allowed: 0, denied: 0, deniedByCode: {}, tokens: 0, latency: new LatencyHistogram() }));
      a.requests++;
      if (e.decision?.allowed === false) {
        a.denied++;
        const code = e.decision.code ?? '-';
        a.deniedByCode[code] = (a.deniedByCode[code] ?? 0) + 1;
      } else a.allowed++;
      const tokens = e.response?.tokens;
      if (typeof tokens === 'number') a.tokens += tokens;
      if (typeof e.response?.durationMs === 'number') a.latency.record(e.response.durationMs);
    }
  }
  const price = options.pricePer1kTokens;
  const tenants = [...byTenant]
    .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))
    .map(([tenant, a]) => ({
      tenant,
      requests: a.requests,
      allowed: a.allowed,
      denied: a.denied,
      deniedByCode: a.deniedByCode,
      tokens: a.tokens,
      latency: { p50Ms: a.latency.quantile(0.5), p95Ms: a.latency.quantile(0.95), p99Ms: a.latency.quantile(0.99) },
      cost: price === undefined ? null : Math.round((a.tokens / 1000) * price * 1e6) / 1e6,
    }));
  return { since: cutoff ?? null, from, to, pricePer1kTokens: price ?? null, tenants };
}

const COLUMNS = ['tenant', 'requests', 'allowed', 'denied', 'tokens', 'p50_ms', 'p95_ms', 'p99_ms', 'cost'] as const;
const cells = (t: TenantUsageRow): (string | number)[] => [t.tenant, t.requests, t.allowed, t.denied, t.tokens, t.latency.p50Ms, t.latency.p95Ms, t.latency.p99Ms, t.cost ?? ''];

export function usageMarkdown(r: UsageReport): string {
  const out = [
    '# Usage report',
    '',
    `Events from ${r.from ?? '-'} to ${r.to ?? '-'}${r.since === null ? '' : ` (since ${r.since})`}.` +
      (r.pricePer1kTokens === null ? ' No price given: no cost estimate.' : ` Estimated cost at ${r.pricePer1kTokens} per 1000 tokens.`),
    '',
    '| tenant | requests | allowed | denied | tokens | p50 ms | p95 ms | p99 ms | est. cost |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...r.tenants.map(
      (t) =>
        `| ${cells(t)
          .map((c) => String(c).replace(/\|/g, '\\|') || '-')
          .join(' | ')} |`,
    ),
  ];
  if (r.tenants.length === 0) out.push('', 'No request events in range.');
  return `${out.join('\n')}\n`;
}

/** RFC 4180: a field with a comma, quote or line break is quoted, quotes doubled. */
const csvField = (v: string | number): string => {
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

export function usageCsv(r: UsageReport): string {
  return `${[COLUMNS.join(','), ...r.tenants.map((t) => cells(t).map(csvField).join(','))].join('\r\n')}\r\n`;
}
