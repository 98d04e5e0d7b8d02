// docs/decisions.md tells the truth about the decision doors: every door path, header, flag,
// variable and reason code it names exists in the code, and its status table is the mapping the
// gRPC door and the nginx door apply.
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { REASONS } from '../../../src/core/reasons.js';
import { rpcCodeOf } from '../../../src/decisions/grpc.js';

const root = new URL('../../../', import.meta.url).pathname;
const read = (path: string): string => readFileSync(`${root}${path}`, 'utf8');
const page = read('docs/decisions.md');
const source = readdirSync(`${root}src/decisions`)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => read(`src/decisions/${f}`))
  .join('\n')
  .toLowerCase();

/** Rows of the markdown table under `heading`, as cells. */
function table(heading: string): string[][] {
  const from = page.indexOf(heading);
  const lines = page.slice(from).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  const rows: string[][] = [];
  for (const l of lines.slice(start + 2)) {
    if (!l.startsWith('|')) break;
    rows.push(
      l
        .slice(1, -1)
        .split('|')
        .map((c) => c.trim()),
    );
  }
  return rows;
}

describe('docs/decisions.md', () => {
  it('names the door paths the HTTP decision listener serves, and the gRPC service and method of the .proto', () => {
    for (const p of ['/envoy', '/forward-auth', '/nginx']) {
      expect(page).toContain(`\`${p}`);
      expect(source).toContain(`'${p}'`);
    }
    const proto = read('src/decisions/proto/envoy/service/auth/v3/external_auth.proto');
    expect(proto).toMatch(/package envoy\.service\.auth\.v3;/);
    expect(proto).toMatch(/service Authorization \{\s*rpc Check\(CheckRequest\) returns \(CheckResponse\);/);
    expect(page).toContain('`envoy.service.auth.v3.Authorization`, method `Check`');
  });

  it('names only headers the doors read or write', () => {
    const named = new Set([...page.matchAll(/\b(X-(?:Portcullis|Original|Forwarded)-[A-Za-z]+|x-envoy-auth-headers-to-remove)\b/g)].map((m) => m[1]!.toLowerCase()));
    expect(named.size).toBeGreaterThan(6);
    for (const h of named) {
      if (h === 'x-forwarded-proto' || h === 'x-forwarded-for') continue; // read through the engine's forwarding rules
      expect(source, h).toContain(h);
    }
  });

  it('names the serve flags and variables that exist', () => {
    const serve = read('src/cli/serve.ts') + read('src/config/serve-config.ts');
    const usage = serve.slice(serve.indexOf('export const usage'), serve.indexOf('`;', serve.indexOf('export const usage')));
    for (const flag of new Set([...page.matchAll(/`(--[a-z-]+)/g)].map((m) => m[1]!))) expect(usage, flag).toContain(`${flag} `);
    for (const v of new Set([...page.matchAll(/\bPORTCULLIS_[A-Z_]+\b/g)].map((m) => m[0]))) expect(serve, v).toContain(v);
  });

  it('maps each status as the gRPC door and the nginx door do, with reason codes of the catalogue', () => {
    const rows = table('## Status mapping per door');
    expect(rows.length).toBe(8);
    for (const [what, codes, grpc, envoy, forward, nginx] of rows) {
      for (const code of [...(codes ?? '').matchAll(/`([A-Z_]+)`/g)].map((m) => m[1]!)) expect(Object.keys(REASONS), `${what}: ${code}`).toContain(code);
      const m = /^`[A-Z_]+` (\d+)(?:, (.*))?$/.exec(grpc ?? '');
      expect(m, `${what}: ${grpc}`).not.toBeNull();
      if (what === 'allow') {
        expect(m?.[1]).toBe('0');
        continue;
      }
      const statuses = (m?.[2] ?? '').split(' / ').map(Number);
      for (const s of statuses) expect(rpcCodeOf(s), `${what}: ${s}`).toBe(Number(m?.[1]));
      expect(envoy).toBe(statuses.join(' / '));
      expect(forward).toBe(statuses.join(' / '));
      const nginxStatus = statuses[0] === 401 ? '401' : '403';
      expect(nginx).toBe(`${nginxStatus}, ${statuses.join(' / ')}`);
    }
  });
});
