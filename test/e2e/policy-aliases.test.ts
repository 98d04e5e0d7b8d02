// YAML aliases in policies, through the built CLI: a large policy that shares its blocks with
// `*anchor` and `<<: *base` loads everywhere, and an alias bomb is refused with file:line:col.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_ALIASES } from '../../src/policy/yaml.js';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';

const TOKEN = 'policy-aliases-admin-token';
let dir: string;

/** `routes` routes, the first carrying the anchors, every other one `<<: *base` and `limits: *std`. */
function aliased(routes: number): string {
  const out = [
    'version: 1',
    'upstreams: { app: { url: "http://127.0.0.1:9" } }',
    'routes:',
    '  - &base',
    '    name: r0',
    '    match: { path: /r0 }',
    '    public: true',
    '    maxBodySize: 64kb',
    '    limits: &std',
    '      - { by: ip, rate: 100/s, burst: 200 }',
  ];
  for (let i = 1; i < routes; i++) out.push('  - <<: *base', `    name: r${i}`, `    match: { path: /r${i} }`, '    limits: *std');
  return `${out.join('\n')}\n`;
}

/** "Billion laughs": ten levels, each a list of nine aliases of the level before. */
function bomb(): string {
  const out = ['version: 1', 'upstreams: { app: { url: "http://127.0.0.1:9" } }', 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'];
  for (let i = 1; i <= 10; i++) out.push(`l${i}: &l${i} [${Array.from({ length: 9 }, () => `*l${i - 1}`).join(', ')}]`);
  out.push('routes:', '  - { name: r, match: { path: /r }, public: true }');
  return `${out.join('\n')}\n`;
}

function write(name: string, text: string): string {
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

beforeAll(() => {
  requireBuiltCli();
  dir = mkdtempSync(join(tmpdir(), 'portcullis-aliases-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('YAML aliases in a policy', () => {
  it('validates, tests and explains a 300-route policy that shares its settings through 598 aliases', async () => {
    const sub = join(dir, 'large');
    mkdirSync(sub);
    const file = join(sub, 'policy.yaml');
    writeFileSync(file, aliased(300));
    writeFileSync(
      join(sub, 'policy.test.yaml'),
      `tests:\n  - &t\n    name: r299 is public\n    request: { method: GET, path: /r299 }\n    expect: allow\n${Array.from({ length: 150 }, (_, i) => `  - { <<: *t, name: "copy ${i}" }`).join('\n')}\n`,
    );
    const v = await runCli(['validate', file]);
    expect(v.stdout).toMatch(/valid \(300 routes/);
    expect(v.code).toBe(0);
    const t = await runCli(['test', sub]);
    expect(t.stdout).toMatch(/151 passed, 0 failed/);
    expect(t.code).toBe(0);
    const e = await runCli(['explain', file, '--method', 'GET', '--path', '/r299', '--json']);
    expect(e.code).toBe(0);
    expect(JSON.parse(e.stdout)).toMatchObject({ route: 'r299', decision: 'allow' });
  });

  it('refuses an alias bomb quickly, at the alias that crosses the bound, with exit 1', async () => {
    const file = write('bomb.yaml', bomb());
    const t0 = Date.now();
    const r = await runCli(['validate', file]);
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${file}:\\d+:\\d+ YAML: with this alias the file expands to more than 500000 values`, 'm'));
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('refuses more alias uses than the bound with file:line:col, and a recursive alias', async () => {
    const many = write('many.yaml', `${aliased(MAX_ALIASES / 2 + 2)}`);
    const r = await runCli(['validate', many]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`^${many}:\\d+:\\d+ YAML: more than ${MAX_ALIASES} alias uses in one file`, 'm'));
    const loop = write('loop.yaml', 'version: 1\nupstreams: &u { app: { url: "http://127.0.0.1:9" }, again: *u }\nroutes: []\n');
    const l = await runCli(['validate', loop]);
    expect(l.code).toBe(1);
    expect(l.stderr).toMatch(new RegExp(`^${loop}:2:\\d+ YAML: alias \\*u is used inside the node it names`, 'm'));
  });
});

describe('serve with aliases', () => {
  let served: Serving;
  let file: string;
  beforeAll(async () => {
    const sub = join(dir, 'served');
    mkdirSync(sub);
    file = join(sub, 'policy.yaml');
    writeFileSync(file, aliased(300));
    served = await serveCli(sub, { PORTCULLIS_ADMIN_TOKEN: TOKEN });
  });
  afterAll(async () => served?.stop());

  it('serves the aliased policy, and keeps it when a reload hits the alias bound', async () => {
    expect((await fetch(`${served.proxy}/r299`)).status).not.toBe(404);
    writeFileSync(file, bomb());
    const res = await fetch(`${served.admin}/admin/reload`, { method: 'POST', headers: { authorization: `Bearer ${TOKEN}` } });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { errors: string[] };
    expect(body.errors.join('\n')).toMatch(new RegExp(`^${file}:\\d+:\\d+ YAML: with this alias the file expands to more than`, 'm'));
    expect((await fetch(`${served.proxy}/r299`)).status).not.toBe(404);
    expect((await fetch(`${served.admin}/healthz`)).status).toBe(200);
  });
});
