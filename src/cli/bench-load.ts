// The load generator of `portcullis bench`, run as a child process (`fork`) so autocannon does not
// share the event loop of the proxy it measures (in a worker thread it runs several times slower).
// Receives its options over IPC (they carry the bench credential: never on a command line), posts a
// `tick` every second (requests and statuses so far) and one `done` with the result.
// Every count bench prints comes from the one tally kept here, response by response: the progress
// lines, the table's request count and the status/reason breakdown cannot disagree.
import { createRequire } from 'node:module';
import { createHistogram } from 'node:perf_hooks';
import { isReasonCode } from '../core/reasons.js';

export interface LoadOptions {
  readonly url: string;
  readonly method: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string | undefined;
  readonly connections: number;
  readonly durationSeconds: number;
  /** Overall requests per second across all connections; undefined: as fast as possible. */
  readonly overallRate: number | undefined;
}

/** Latency of every response (all statuses), microsecond resolution, in milliseconds. */
export interface LatencyMs {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p99_9: number;
  readonly max: number;
  readonly mean: number;
}

/** Responses by `status\u0000code`: the reason code of a Portcullis problem body, else OK (forwarded). */
export type Tally = Record<string, number>;

export type LoadMessage =
  | { readonly type: 'tick'; readonly requests: number; readonly statuses: Record<string, number> }
  | { readonly type: 'done'; readonly result: unknown; readonly latencyMs: LatencyMs; readonly requests: number; readonly tally: Tally }
  | { readonly type: 'error'; readonly message: string };

// autocannon ships no type declarations; bench-report.ts types the part of the result bench reads.
type Autocannon = (opts: Record<string, unknown>, cb: (err: Error | null, result: unknown) => void) => NodeJS.EventEmitter;

export const LOAD_CHILD_ENV = 'PORTCULLIS_BENCH_LOAD';

const PROBLEM_TYPE = 'https://portcullis.dev/problems/';

/**
 * The reason code of one response: what Portcullis wrote in its problem body, or OK for anything
 * it forwarded (an upstream's own 4xx/5xx included, as the proxy's metrics count it).
 */
export function reasonOf(status: number, body: string): string {
  if (status < 400 || !body.startsWith('{')) return 'OK';
  try {
    const p = JSON.parse(body) as { type?: unknown; code?: unknown };
    return typeof p.type === 'string' && p.type.startsWith(PROBLEM_TYPE) && typeof p.code === 'string' && isReasonCode(p.code) ? p.code : 'OK';
  } catch {
    return 'OK';
  }
}

function run(opts: LoadOptions, send: (m: LoadMessage) => void): void {
  const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;
  const statuses: Record<string, number> = {};
  const tally: Tally = {};
  let requests = 0;
  // autocannon's own histogram has 1ms resolution and only counts 2xx; a proxy answers in well under
  // a millisecond and its 429s matter, so every response is recorded here in microseconds.
  const latency = createHistogram();
  const ms = (us: number): number => Math.round(us) / 1000;
  const latencyMs = (): LatencyMs => ({
    p50: ms(latency.percentile(50)),
    p90: ms(latency.percentile(90)),
    p99: ms(latency.percentile(99)),
    p99_9: ms(latency.percentile(99.9)),
    max: ms(latency.max),
    mean: ms(latency.mean),
  });
  const settings: Record<string, unknown> = {
    url: opts.url,
    method: opts.method,
    headers: opts.headers,
    body: opts.body,
    // The one request, repeated; its onResponse sees each body, so a denial is tallied under its code.
    requests: [
      {
        onResponse: (status: number, body: string) => {
          const key = `${status}\u0000${reasonOf(status, body)}`;
          tally[key] = (tally[key] ?? 0) + 1;
        },
      },
    ],
    connections: opts.connections,
    duration: opts.durationSeconds,
    ...(opts.overallRate !== undefined ? { overallRate: opts.overallRate } : {}),
  };
  const instance = autocannon(settings, (err, result) => {
    if (err) send({ type: 'error', message: err.message });
    else send({ type: 'done', result: JSON.parse(JSON.stringify(result)) as unknown, latencyMs: latencyMs(), requests, tally });
  });
  instance.on('response', (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
    requests++;
    latency.record(Math.max(1, Math.round(responseTimeMs * 1000)));
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1;
  });
  instance.on('tick', () => send({ type: 'tick', requests, statuses: { ...statuses } }));
}

if (process.env[LOAD_CHILD_ENV] === '1' && process.send) {
  const send = (m: LoadMessage): void => void process.send!(m);
  process.once('message', (opts: LoadOptions) => run(opts, send));
}
