// `portcullis usage report` with the built CLI, on an audit file: per tenant requests, denials,
// tokens, latency percentiles and cost, in each format.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli } from '../helpers/cli.js';

let file: string;
const now = Date.now();
const iso = (agoMs: number): string => new Date(now - agoMs).toISOString();

/** A request event as the audit pipeline writes it (the fields the report reads, and the rest). */
function request(i: number, tenant: string | null, agoMs: number, over: { allowed?: boolean; code?: string | null; tokens?: number | null; durationMs?: number } = {}): string {
  return JSON.stringify({
    actor: { keyId: null, subject: null, tenant, via: null },
    decision: { allowed: over.allowed ?? true, code: over.code ?? null, permission: null, shadow: null },
    detail: null,
    id: `e${i}`,
    request: { id: `r${i}`, ip: '127.0.0.1', method: 'POST', path: '/v1/chat', route: 'llm' },
    response: { durationMs: over.durationMs ?? 10, status: over.allowed === false ? 429 : 200, tokens: over.tokens === undefined ? 100 : over.tokens },
    severity: 'info',
    time: iso(agoMs),
    type: 'request',
    v: 1,
  });
}

beforeAll(() => {
  requireBuiltCli();
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-usage-'));
  file = join(dir, 'audit.ndjson');
  const lines = [
    JSON.stringify({ actor: null, decision: null, detail: { hash: 'h' }, id: 's', request: null, response: null, severity: 'info', time: iso(1000), type: 'policy.loaded', v: 1 }),
    // acme: 3 allowed (100 + 250 + 0 tokens), 1 denied; one of them 40 days ago
    request(1, 'acme', 60_000, { durationMs: 5 }),
    request(2, 'acme', 50_000, { tokens: 250, durationMs: 15 }),
    request(3, 'acme', 40_000, { tokens: 0, durationMs: 100 }),
    request(4, 'acme', 30_000, { allowed: false, code: 'TOKEN_QUOTA_EXCEEDED', tokens: null, durationMs: 1 }),
    request(5, 'acme', 40 * 86_400_000, { tokens: 999_999 }),
    // "big, co": a tenant name CSV must quote
    request(6, 'big, co', 20_000, { tokens: 1500 }),
    // no tenant: an unauthenticated refusal, never metered
    request(7, null, 10_000, { allowed: false, code: 'AUTH_MISSING', tokens: null }),
    '{"type":"request","torn',
  ];
  writeFileSync(file, `${lines.join('\n')}\n`);
});

describe('portcullis usage report', () => {
  it('prints per tenant requests, denials, tokens, latency and the estimated cost as JSON, within --since', async () => {
    const r = await runCli(['usage', 'report', file, '--since', '30d', '--format', 'json', '--price-per-1k-tokens', '0.5']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.pricePer1kTokens).toBe(0.5);
    expect(report.tenants.map((t: { tenant: string }) => t.tenant)).toEqual(['-', 'acme', 'big, co']);
    const acme = report.tenants[1];
    expect(acme).toMatchObject({ requests: 4, allowed: 3, denied: 1, deniedByCode: { TOKEN_QUOTA_EXCEEDED: 1 }, tokens: 350, cost: 0.175 });
    expect(acme.latency.p50Ms).toBeGreaterThanOrEqual(5);
    expect(acme.latency.p50Ms).toBeLessThanOrEqual(5.2);
    expect(acme.latency.p99Ms).toBeGreaterThanOrEqual(100);
    expect(acme.latency.p99Ms).toBeLessThanOrEqual(104);
    expect(report.tenants[0]).toMatchObject({ requests: 1, denied: 1, tokens: 0, deniedByCode: { AUTH_MISSING: 1 } });
  });

  it('counts every event without --since, and prints a markdown table by default, without a cost when no price is given', async () => {
    const r = await runCli(['usage', 'report', file]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('| tenant | requests | allowed | denied | tokens | p50 ms | p95 ms | p99 ms | est. cost |');
    expect(r.stdout).toMatch(/^\| acme \| 5 \| 4 \| 1 \| 1000349 \| [\d.]+ \| [\d.]+ \| [\d.]+ \| - \|$/m);
    expect(r.stdout).toContain('No price given');
  });

  it('prints CSV with a header and quotes a field that needs it', async () => {
    const r = await runCli(['usage', 'report', file, '--since', '30d', '--format', 'csv', '--price-per-1k-tokens', '2']);
    expect(r.code).toBe(0);
    const rows = r.stdout.split('\r\n');
    expect(rows[0]).toBe('tenant,requests,allowed,denied,tokens,p50_ms,p95_ms,p99_ms,cost');
    expect(rows[2]).toMatch(/^acme,4,3,1,350,[\d.]+,[\d.]+,[\d.]+,0\.7$/);
    expect(rows[3]).toMatch(/^"big, co",1,1,0,1500,[\d.]+,[\d.]+,[\d.]+,3$/);
    expect(rows.at(-1)).toBe('');
  });

  it('exits 2 on a bad invocation and 1 on a file it cannot read', async () => {
    expect((await runCli(['usage', 'report', file, '--format', 'xml'])).code).toBe(2);
    expect((await runCli(['usage', 'report', file, '--price-per-1k-tokens', 'cheap'])).code).toBe(2);
    expect((await runCli(['usage', 'report'])).code).toBe(2);
    expect((await runCli(['usage'])).code).toBe(2);
    const missing = await runCli(['usage', 'report', `${file}.missing`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no such file');
  });
});
