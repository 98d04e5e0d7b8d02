// `portcullis bench` as a user runs it: the built CLI against a small fixture policy, 1s per run.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Ran, root, runCli } from '../helpers/cli.js';

const POLICY = 'test/fixtures/bench/basic';
const LIMITED = 'test/fixtures/bench/limited';
let work: string;

// The fixture policies read BENCH_FIXTURE_UPSTREAM; unset, `bench` fills it with its own stub.
const bench = (args: string[]): Promise<Ran> => runCli(['bench', ...args], { LOG_LEVEL: 'error' }, ['BENCH_FIXTURE_UPSTREAM']);

interface Report {
  route: string;
  request: { method: string; path: string; credential: string };
  tenant: { name: string; tier?: string; limits: string[] };
  isolation: { store: string; audit: string };
  proxy: { requests: number; requestsPerSecond: number; latencyMs: Record<string, number>; statuses: { status: string; code: string; count: number }[] };
  direct?: { requests: number };
  overheadRatio?: number;
}
const report = (file: string): Report => JSON.parse(readFileSync(file, 'utf8')) as Report;
const num = (s: string | undefined): number => Number((s ?? 'NaN').replace(/,/g, ''));

/** Every request count the run printed: the last progress line, the table, the status lines and their heading. */
function countsIn(r: Ran): { finished: number; table: number; statusSum: number; heading: number } {
  const lines = r.stdout.split('\n');
  const from = lines.findIndex((l) => l.startsWith('status '));
  let statusSum = 0;
  for (const l of lines.slice(from + 1)) {
    const m = /^\d{3}\s+\S+\s+([\d,]+)$/.exec(l);
    if (m) statusSum += num(m[1]);
  }
  return {
    finished: num(/bench: portcullis finished: ([\d,]+) requests/.exec(r.stderr)?.[1]),
    table: num(/^portcullis\s.*\s([\d,]+)\s+[\d,]+$/m.exec(r.stdout)?.[1]),
    statusSum,
    heading: num(/add up to the ([\d,]+) requests above/.exec(r.stdout)?.[1]),
  };
}

beforeAll(() => {
  if (!existsSync(`${root}dist/cli/bench.js`)) throw new Error('dist/cli/bench.js is missing: run `npm run build` (npm test does it first)');
  work = mkdtempSync(join(tmpdir(), 'portcullis-bench-e2e-'));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('portcullis bench', () => {
  it('loads a protected route with a generated API key and prints req/s, percentiles and statuses', async () => {
    const json = join(work, 'api-key.json');
    const r = await bench(['--policy', POLICY, '--duration', '1s', '--connections', '4', '--json', json]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('route "tenant-reports" — GET /v1/tenants/bench/reports/bench (credential: apiKey, tenant "bench", no tier)');
    expect(r.stdout).toMatch(/^\s+req\/s\s+p50\s+p90\s+p99\s+p99\.9\s+max\s+requests\s+errors$/m);
    expect(r.stdout).toMatch(/^portcullis\s+[\d,]+\s+[\d.]+ ms/m);
    const out = report(json);
    expect(out.proxy.requests).toBeGreaterThan(0);
    expect(out.proxy.statuses).toEqual([{ status: '200', code: 'OK', count: out.proxy.requests }]);
    expect(countsIn(r)).toEqual({ finished: out.proxy.requests, table: out.proxy.requests, statusSum: out.proxy.requests, heading: out.proxy.requests });
    expect(out.proxy.latencyMs.p99_9).toBeGreaterThanOrEqual(out.proxy.latencyMs.p50!);
  });

  it('signs JWTs for a route that accepts only JWTs', async () => {
    const json = join(work, 'jwt.json');
    const r = await bench(['--policy', POLICY, '--route', 'sso-only', '--tenant', 'acme', '--duration', '1s', '--connections', '2', '--json', json]);
    expect(r.code).toBe(0);
    const out = report(json);
    expect(out.request).toEqual({ method: 'GET', path: '/v1/sso/acme/x', credential: 'jwt' });
    expect(out.proxy.statuses.map((s) => `${s.status} ${s.code}`)).toEqual(['200 OK']);
  });

  it('shows 429s by reason code on a rate-limited route', async () => {
    const json = join(work, 'limited.json');
    const r = await bench(['--policy', LIMITED, '--route', 'throttled', '--duration', '2s', '--connections', '2', '--rate', '40', '--json', json]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^429\s+RATE_LIMITED\s+[\d,]+$/m);
    expect(r.stdout).toContain('limits: route by principal: 5/s burst 5');
    const out = report(json);
    const ok = out.proxy.statuses.find((s) => s.code === 'OK')!;
    const limited = out.proxy.statuses.find((s) => s.code === 'RATE_LIMITED')!;
    expect(ok.count + limited.count).toBe(out.proxy.requests);
    expect(countsIn(r)).toEqual({ finished: out.proxy.requests, table: out.proxy.requests, statusSum: out.proxy.requests, heading: out.proxy.requests });
    // 5/s with a burst of 5 over 2s: at most 5 + 2*5 (+1 for the clock edge) get through.
    expect(ok.count).toBeGreaterThan(0);
    expect(ok.count).toBeLessThanOrEqual(16);
    expect(limited.count).toBeGreaterThan(ok.count);
  });

  it('compares against the upstream loaded directly with --compare-direct', async () => {
    const json = join(work, 'direct.json');
    const r = await bench(['--policy', POLICY, '--route', 'health', '--duration', '1s', '--connections', '2', '--compare-direct', '--json', json]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^direct \(no proxy\)\s+[\d,]+/m);
    expect(r.stdout).toMatch(/overhead: direct serves \d+\.\d\dx the req\/s of portcullis/);
    const out = report(json);
    expect(out.direct!.requests).toBeGreaterThan(0);
    expect(out.overheadRatio).toBeGreaterThan(0);
  });

  it('answers bad flags and unknown routes plainly', async () => {
    const usage = await bench(['--policy', POLICY, '--duration', 'soon']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--duration expects a duration such as 10s');
    const unknown = await bench(['--policy', POLICY, '--route', 'nope', '--duration', '1s']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no route named "nope"');
  });
});
