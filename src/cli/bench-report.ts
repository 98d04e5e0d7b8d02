// What `portcullis bench` prints and writes: autocannon's result boiled down to one measurement per
// target, the status breakdown with reason codes (from portcullis_requests_total), and the table.

/** The parts of an autocannon result bench reads. */
export interface AutocannonResult {
  readonly requests: { readonly average: number; readonly total: number };
  readonly statusCodeStats?: Readonly<Record<string, { readonly count: number }>>;
  readonly errors: number;
  readonly timeouts: number;
  readonly duration: number;
}

export interface Measurement {
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p99_9: number; readonly max: number; readonly mean: number };
  readonly statusCodes: Readonly<Record<string, number>>;
  readonly errors: number;
  readonly timeouts: number;
}

export interface StatusLine {
  readonly status: string;
  /** Reason code, "OK" when allowed and forwarded. */
  readonly code: string;
  readonly count: number;
}

export interface BenchReport {
  readonly policy: string;
  readonly route: string;
  readonly request: { readonly method: string; readonly path: string; readonly credential: string };
  readonly connections: number;
  readonly durationSeconds: number;
  readonly rate: number | undefined;
  readonly upstream: string;
  readonly proxy: Measurement;
  readonly statuses: readonly StatusLine[];
  /** Requests in flight when the run stopped (the proxy saw the client leave: 499). */
  readonly cutOff: number;
  readonly direct?: Measurement;
  /** direct req/s ÷ proxy req/s: 1.0 is no throughput overhead. */
  readonly overheadRatio?: number;
}

export function measurementOf(r: AutocannonResult, latencyMs: Measurement['latencyMs']): Measurement {
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = s.count;
  return {
    requestsPerSecond: r.duration > 0 ? r.requests.total / r.duration : r.requests.average,
    requests: r.requests.total,
    latencyMs,
    statusCodes,
    errors: r.errors,
    timeouts: r.timeouts,
  };
}

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => `${n.toFixed(n < 10 ? 3 : 1)} ms`;

function table(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
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
    int(m.errors + m.timeouts),
  ]);
  const lines = [
    `portcullis bench: route "${r.route}" — ${r.request.method} ${r.request.path} (credential: ${r.request.credential})`,
    `${r.connections} connections, ${r.durationSeconds}s${r.rate !== undefined ? `, ${int(r.rate)} req/s offered` : ''}, upstream ${r.upstream}`,
    '',
    table([head, ...rows]),
    '',
    'responses through portcullis:',
    table([['status', 'code', 'count'], ...r.statuses.map((s) => [s.status, s.code, int(s.count)])]),
  ];
  if (r.cutOff > 0) lines.push(`(${int(r.cutOff)} more were in flight when the run stopped)`);
  if (r.overheadRatio !== undefined) {
    lines.push('', `overhead: direct serves ${r.overheadRatio.toFixed(2)}x the req/s of portcullis (1.00x = no throughput cost)`);
  }
  return `${lines.join('\n')}\n`;
}
