import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { deny, problemBody, REASON_CODES, REASONS } from '../../../src/core/reasons.js';

// The catalogue as DESIGN.md ("Decisions and errors") states it, copied verbatim: codes are a public
// contract, so a change to either side must be a deliberate change to both.
const DESIGN_LIST = `ROUTE_NOT_FOUND 404, BAD_REQUEST 400, IP_DENIED 403, AUTH_MISSING 401, AUTH_INVALID 401, AUTH_EXPIRED 401,
IDP_UNAVAILABLE 503, LOCKED_OUT 429, PERMISSION_DENIED 403, TENANT_MISMATCH 403, RATE_LIMITED 429, QUOTA_EXCEEDED 429,
CONCURRENCY_EXCEEDED 429, BODY_TOO_LARGE 413, BREAKER_OPEN 503, STORE_UNAVAILABLE 503,
UPSTREAM_TIMEOUT 504, UPSTREAM_ERROR 502, GATEWAY_ERROR 500, HEADERS_TOO_LARGE 431, REQUEST_TIMEOUT 408, CORS_REJECTED 403, CONDITION_FAILED 403, UPSTREAM_UNAVAILABLE 503,
TOKEN_QUOTA_EXCEEDED 429`;

function designCatalogue(): [string, number][] {
  return DESIGN_LIST.split(',').map((entry) => {
    const [code, status] = entry.trim().split(/\s+/);
    return [code!, Number(status)];
  });
}

/** The README's reason-code table: rows `| \`CODE\` | status | meaning |` under the header `| code | status | meaning |`. */
function readmeCatalogue(): { code: string; status: number; meaning: string }[] {
  const readme = readFileSync(new URL('../../../README.md', import.meta.url), 'utf8');
  const lines = readme.split('\n');
  const header = lines.findIndex((l) => /^\|\s*code\s*\|\s*status\s*\|\s*meaning\s*\|\s*$/i.test(l));
  expect(header, 'README.md has a "| code | status | meaning |" table').toBeGreaterThanOrEqual(0);
  const rows: { code: string; status: number; meaning: string }[] = [];
  for (const line of lines.slice(header + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
    rows.push({ code: cells[0]!.replace(/`/g, ''), status: Number(cells[1]), meaning: cells[2] ?? '' });
  }
  return rows;
}

describe('the reason-code catalogue', () => {
  it('matches the list in DESIGN.md exactly, codes, order and statuses', () => {
    expect(REASON_CODES.map((c) => [c, REASONS[c].status])).toEqual(designCatalogue());
  });

  it('agrees with the README table row for row', () => {
    const rows = readmeCatalogue();
    expect(rows.map((r) => [r.code, r.status])).toEqual(REASON_CODES.map((c) => [c, REASONS[c].status]));
    for (const r of rows) expect(r.meaning.length, `README meaning for ${r.code}`).toBeGreaterThan(0);
  });

  it('renders a problem body with the code, the status and the request id', () => {
    const body = JSON.parse(problemBody(deny('TENANT_MISMATCH'), 'req-1')) as Record<string, unknown>;
    expect(body).toMatchObject({ status: 403, code: 'TENANT_MISMATCH', requestId: 'req-1', type: 'https://portcullis.dev/problems/tenant-mismatch' });
  });
});
