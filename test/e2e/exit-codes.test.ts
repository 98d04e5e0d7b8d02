// The README's exit-code table, run: every `portcullis …` example in a cell of the 0, 1 or 2 column
// is run with the built CLI and must exit with that column's code. The table is parsed from the
// README, so the documentation and the program cannot drift apart.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalWithoutHash, chainHash, GENESIS } from '../../src/audit/chain.js';
import { hashApiKey } from '../../src/authn/api-key.js';
import { MAIN, requireBuiltCli, root } from '../helpers/cli.js';

interface Example {
  readonly command: string;
  readonly code: number;
  readonly line: string;
}

/** Rows of the table under "### Exit codes": each backticked `portcullis …` (optionally after VAR=value) in column 0, 1 or 2. */
function examples(): { rows: string[]; examples: Example[] } {
  const readme = readFileSync(`${root}README.md`, 'utf8');
  const section = readme.slice(readme.indexOf('### Exit codes'));
  const table = section.slice(0, section.indexOf('\n\n', section.indexOf('| command |')));
  const lines = table.split('\n').filter((l) => l.startsWith('| `'));
  const out: Example[] = [];
  const rows: string[] = [];
  for (const line of lines) {
    const cells = line.slice(2, -2).split(' | ');
    rows.push(cells[0]!);
    for (let code = 0; code <= 2; code++) {
      for (const [, command] of cells[code + 1]!.matchAll(/`((?:[A-Z_]+=\S+ )*portcullis(?: [^`]*)?)`/g)) out.push({ command: command!, code, line: cells[0]! });
    }
  }
  return { rows, examples: out };
}

let dir: string;

const policy = (extraRoute = ''): string => `version: 1
upstreams: { app: { url: "http://127.0.0.1:9" } }
authentication:
  apiKeys:
    keys:
      - { id: ci, hash: "${hashApiKey('pcs_exit_codes_example')}", tenant: acme, roles: [user] }
roles: { user: { permissions: ["api:use"] } }
routes:
  - { name: health, match: { path: /healthz }, public: true }
  - { name: api, match: { path: "/api/**" }, require: ["api:use"] }
${extraRoute}`;

function auditTrail(): string {
  let prev = GENESIS;
  const lines: string[] = [];
  for (let seq = 0; seq < 3; seq++) {
    const event: Record<string, unknown> & { chain: Record<string, unknown> } = {
      v: 1,
      id: `e-${seq}`,
      time: '2026-12-01T00:00:00.000Z',
      type: 'policy.loaded',
      hash: 'h',
      chain: { instance: 'ci', seq, prev },
    };
    event.chain.hash = chainHash(prev, canonicalWithoutHash(event));
    prev = event.chain.hash as string;
    lines.push(JSON.stringify(event));
  }
  return `${lines.join('\n')}\n`;
}

beforeAll(() => {
  requireBuiltCli();
  dir = mkdtempSync(join(tmpdir(), 'portcullis-exit-codes-'));
  for (const d of ['good', 'failing', 'notests']) mkdirSync(join(dir, d));
  writeFileSync(join(dir, 'good', 'policy.yaml'), policy());
  writeFileSync(join(dir, 'good', 'policy.test.yaml'), 'tests:\n  - { name: health is public, request: { method: GET, path: /healthz }, expect: allow }\n');
  writeFileSync(join(dir, 'failing', 'policy.yaml'), policy('  - { name: extra, match: { path: /extra }, public: true }\n'));
  writeFileSync(join(dir, 'failing', 'policy.test.yaml'), 'tests:\n  - { name: wrongly expected, request: { method: GET, path: /api/x }, expect: allow }\n');
  writeFileSync(join(dir, 'notests', 'policy.yaml'), policy());
  writeFileSync(join(dir, 'bad.yaml'), 'version: 2\nroutes: nope\n');
  const trail = auditTrail();
  writeFileSync(join(dir, 'audit.ndjson'), trail);
  writeFileSync(join(dir, 'tampered.ndjson'), trail.replace('"e-1"', '"e-X"'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs one example as a shell would: leading VAR=value words set the environment. */
function run(command: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const words = command.split(' ');
  const env: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn' };
  delete env.PORTCULLIS_ADMIN_TOKEN;
  while (/^[A-Z_]+=/.test(words[0]!)) {
    const [name, ...value] = words.shift()!.split('=');
    env[name!] = value.join('=');
  }
  expect(words.shift()).toBe('portcullis');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(root, MAIN), ...words], { cwd: dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const { rows, examples: all } = examples();

describe('the README exit-code table', () => {
  it('has a row for every command, each with examples', () => {
    const main = readFileSync(`${root}src/main.ts`, 'utf8');
    const commands = [...main.matchAll(/^ {2}(\w+): \{ summary:/gm)].map((m) => `\`${m[1]}\``);
    expect(commands.length).toBeGreaterThan(5);
    expect(rows.sort()).toEqual(['`portcullis`', ...commands].sort());
    for (const row of rows) expect(all.filter((e) => e.line === row).length, row).toBeGreaterThan(1);
  });

  it.each(all.map((e) => [e.command, e.code] as const))(
    '%s exits %i',
    async (command, code) => {
      const r = await run(command);
      expect({ code: r.code, stderr: r.code === code ? '' : r.stderr }).toEqual({ code, stderr: '' });
      // A usage error says so in our words, never with a stack trace.
      expect(r.stderr).not.toMatch(/\n\s+at /);
    },
    60_000,
  );
});
