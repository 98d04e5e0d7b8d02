// What `portcullis bench` prints and writes: autocannon's result boiled down to one measurement per
// target, the status breakdown with reason codes (tallied response by response by the load
// generator, so it sums to the request count), what the run was isolated from, and the table.
import type { LatencyMs, Tally } from './bench-load.js';
import { counted } from './command.js';

/** The parts of an autocannon result bench reads. */
export interface AutocannonResult {
  readonly requests: { readonly average: number; readonly total: number };
  readonly errors: number;
  readonly timeouts: number;
  readonly duration: number;
}

export interface Measurement {
  readonly requestsPerSecond: number;
  /** Responses received during the run: every other count of the run adds up to this one. */
  readonly requests: number;
  readonly latencyMs: LatencyMs;
  /** Responses by status and reason code, most frequent first; the counts sum to `requests`. */
  readonly statuses: readonly StatusLine[];
  /** Connection errors and timeouts: requests that got no response (not in `requests`). */
  readonly errors: number;
  readonly timeouts: number;
}

interface StatusLine {
  readonly status: string;
  /** Reason code, "OK" when allowed and forwarded. */
  readonly code: string;
  readonly count: number;
}

/** What the run used instead of the policy's own state and destinations. */
interface BenchIsolation {
  /** `private`: an in-memory store of this process; `policy`: the policy's store.url (--use-policy-store). */
  readonly store: 'private' | 'policy';
  /** `temporary`: the policy's audit sinks and spool became one file in a directory deleted afterwards; `none`: the policy has no audit section. */
  readonly audit: 'temporary' | 'none';
}

export interface BenchReport {
  readonly policy: string;
  readonly route: string;
  readonly request: { readonly method: string; readonly path: string; readonly credential: string };
  /** Tenant of the generated credential, and the limits that apply to it. */
  readonly tenant: { readonly name: string; readonly tier: string | undefined; readonly limits: readonly string[] };
  readonly isolation: BenchIsolation;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly rate: number | undefined;
  readonly upstream: string;
  readonly proxy: Measurement;
  readonly direct?: Measurement;
  /** direct req/s ÷ proxy req/s: 1.0 is no throughput overhead. */
  readonly overheadRatio?: number;
}

export function measurementOf(r: AutocannonResult, latencyMs: LatencyMs, requests: number, tally: Tally): Measurement {
  const statuses = Object.entries(tally)
    .map(([key, count]) => {
      const [status, code] = key.split('\u0000') as [string, string];
      return { status, code, count };
    })
    .sort((a, b) => b.count - a.count);
  return {
    requestsPerSecond: r.duration > 0 ? requests / r.duration : r.requests.average,
    requests,
    latencyMs,
    statuses,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(n < 10 ? 3 : 1)} ms`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows
    .map((r) =>
      r
        .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function formatReport(r: BenchReport): string {
  const targets: [string, Measurement][] = [['portcullis', r.proxy]];
  if (r.direct) targets.push(['direct (no proxy)', r.direct]);
  const head = ['', 'req/s', 'p50', 'p90', 'p99', 'p99.9', 'max', 'requests', 'errors'];
  const rows = targets.map(([name, m]) => [
    name,
    int(m.requestsPerSecond),
    ms(m.latencyMs.p50),
    ms(m.latencyMs.p90),
    ms(m.latencyMs.p99),
    ms(m.latencyMs.p99_9),
    ms(m.latencyMs.max),
    int(m.requests),
    int(m.errors), // autocannon counts a timeout as an error too
  ]);
  const tier = r.tenant.tier === undefined ? 'no tier' : `tier "${r.tenant.tier}"`;
  const who = r.request.credential === 'none' ? 'credential: none' : `credential: ${r.request.credential}, tenant "${r.tenant.name}", ${tier}`;
  const lines = [
    `portcullis bench: route "${r.route}" — ${r.request.method} ${r.request.path} (${who})`,
    `${counted(r.connections, 'connection')}, ${r.durationSeconds}s${r.rate !== undefined ? `, ${int(r.rate)} req/s offered` : ''}, upstream ${r.upstream}`,
    `limits: ${r.tenant.limits.length > 0 ? r.tenant.limits.join('; ') : 'none apply to this request'}`,
    `store: ${r.isolation.store === 'private' ? "private, in memory (counters start at zero; the policy's store is not touched)" : "THE POLICY'S STORE (--use-policy-store): real counters were spent"}`,
    `audit: ${r.isolation.audit === 'temporary' ? "to a temporary file, deleted after the run (the policy's sinks and spool are not used)" : 'none (the policy has no audit section)'}`,
    '',
    table([head, ...rows]),
    '',
    `responses through portcullis, by status and reason (they add up to the ${int(r.proxy.requests)} requests above):`,
    table([['status', 'code', 'count'], ...r.proxy.statuses.map((s) => [s.status, s.code, int(s.count)])]),
  ];
  if (r.overheadRatio !== undefined) {
    lines.push('', `overhead: direct serves ${r.overheadRatio.toFixed(2)}x the req/s of portcullis (1.00x = no throughput cost)`);
  }
  return `${lines.join('\n')}\n`;
}
