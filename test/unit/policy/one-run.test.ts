// One load reports every error it can find: YAML-level problems, env:/file: misses and schema
// errors of every file, merge errors, and the semantic errors of the parts that loaded, each at
// file:line:column and in file order. A semantic finding that may only be the echo of a refused
// part (an upstream whose url was unset) is not reported; partial input never crashes the compile.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openPolicy } from '../../../src/engine/compile.js';
import { validatePolicy } from '../../../src/engine/validate.js';
import { EventBus } from '../../../src/events.js';
import { formatDiagnostic, PolicyError } from '../../../src/policy/diagnostics.js';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portcullis-one-run-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function errors(files: Record<string, string>, path = dir): Promise<string[]> {
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  const r = await validatePolicy(path, { env: {} });
  expect(r.ok).toBe(false);
  return r.diagnostics.filter((d) => d.severity === 'error').map((d) => formatDiagnostic(d).slice(dir.length + 1));
}

describe('one validation run', () => {
  it('reports schema errors of one file with the semantic errors of another, in file order', async () => {
    const out = await errors({
      'a.yaml': 'version: 1\nupstreams:\n  app: { url: http://127.0.0.1:9, conections: 3 }\nauthentication: { apiKeys: {} }\n',
      'b.yaml': 'version: 1\nroutes:\n  - { name: r, match: { path: /r }, upstream: ap }\n  - { name: s, match: { path: /s }, tenantParam: tenant }\n',
    });
    expect(out).toEqual([
      'a.yaml:3:35 upstreams.app.conections: unknown key (did you mean "connections"?)',
      'b.yaml:3:47 routes[0].upstream: unknown upstream "ap" (did you mean "app"?)',
      'b.yaml:4:50 routes[1].tenantParam: the path pattern has no parameter {tenant}',
    ]);
  });

  it('keeps the written index and line of the routes after one the schema refused', async () => {
    const out = await errors(
      {
        'p.yaml': `version: 1
upstreams: { app: { url: http://127.0.0.1:9 } }
authentication: { apiKeys: {} }
routes:
  - { nme: typo, match: { path: /t } }
  - { name: r, match: { path: /r }, upstream: nowhere }
`,
      },
      join(dir, 'p.yaml'),
    );
    expect(out).toEqual(['p.yaml:5:5 routes[0].name: required', 'p.yaml:5:7 routes[0].nme: unknown key (did you mean "name"?)', 'p.yaml:6:47 routes[1].upstream: unknown upstream "nowhere"']);
  });

  it('does not report what follows from a refused part: an upstream whose url is unset has no other error', async () => {
    const out = await errors(
      {
        'p.yaml': `version: 1
upstreams:
  app: { url: env:PORTCULLIS_ONE_RUN_UNSET }
authentication: { apiKeys: {} }
routes:
  - { name: r, match: { path: /r }, upstream: app }
  - { name: s, match: { path: /s }, upstream: app, tenantParam: t }
`,
      },
      join(dir, 'p.yaml'),
    );
    expect(out).toEqual(['p.yaml:3:15 upstreams.app.url: environment variable PORTCULLIS_ONE_RUN_UNSET is not set', 'p.yaml:7:65 routes[1].tenantParam: the path pattern has no parameter {t}']);
  });

  it.each([
    ['a list where a mapping belongs', 'version: 1\nupstreams: [1, 2]\nroutes: 5\nauthentication: nope\n'],
    ['routes of every wrong type', 'version: 1\nroutes: [1, "x", null, [], { name: r }]\n'],
    ['a wrong version and unknown sections', 'version: 3\nroute: []\nupstreams: { app: "http://x" }\n'],
    ['a named entry of the wrong type', 'version: 1\nupstreams: { app: 5 }\nroles: { a: [] }\ntenants: { tiers: { t: 1 } }\nroutes: [{ name: r, match: { path: /r }, public: true }]\n'],
  ])('reports %s without crashing', async (_what, text) => {
    const out = await errors({ 'p.yaml': text }, join(dir, 'p.yaml'));
    expect(out.length).toBeGreaterThan(0);
    for (const line of out) expect(line).toMatch(/^p\.yaml:\d+:\d+ /);
  });

  it('is what serve refuses a policy with: every error of the run in one PolicyError', async () => {
    await writeFile(join(dir, 'p.yaml'), 'version: 1\nupstreams: { app: { url: http://127.0.0.1:9, retries: 9 } }\nroutes:\n  - { name: r, match: { path: /r } }\n');
    const opened = openPolicy(join(dir, 'p.yaml'), { watch: false, logger: pino({ level: 'silent' }), bus: new EventBus(), env: {} });
    const err = (await opened.catch((e: unknown) => e)) as PolicyError;
    expect(err).toBeInstanceOf(PolicyError);
    expect(err.diagnostics.map((d) => `${d.line}:${d.column} ${d.path}`)).toEqual(['2:55 upstreams.app.retries', '4:5 routes[0]']);
  });
});
