// Paths in a policy mean the same files whatever directory `serve` is started from: relative audit
// paths resolve against the directory of the policy file that sets them, as `file:` values do.
// Through the built CLI, started (as serveCli does) from the repository root, not the policy's directory.
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, root, runCli, serveCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting: ${what}`);
    await sleep(50);
  }
}

const lines = (file: string): string[] =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l.trim() !== '')
    : [];

let upstream: Server;
let upstreamUrl: string;

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
});

afterAll(() => new Promise((r) => upstream.close(r)));

describe('relative paths in the audit section', () => {
  it('writes the audit file and the spool next to the policy file, not in the working directory', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-paths-'));
    // A webhook nobody answers: its events go to the spool, which shows where the spool is.
    const closed = await freePort();
    writeFileSync(
      path.join(dir, 'policy.yaml'),
      `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  chain: true
  spool: spool-dir
  sinks:
    - file: { path: trail/audit.ndjson }
    - webhook: { url: "http://127.0.0.1:${closed}/hook" }
`,
    );
    mkdirSync(path.join(dir, 'trail'));
    const before = new Set(readdirSync(root));
    const serving = await serveCli(path.join(dir, 'policy.yaml'));
    try {
      expect((await fetch(`${serving.proxy}/hello`)).status).toBe(200);
      const file = path.join(dir, 'trail', 'audit.ndjson');
      await until('an event in the audit file beside the policy', () => lines(file).some((l) => l.includes('"/hello"')));
      const spool = path.join(dir, 'spool-dir', 'webhook.spool.ndjson');
      await until('the webhook spool beside the policy', () => lines(spool).some((l) => l.includes('"/hello"')));
    } finally {
      await serving.stop();
    }
    expect([...readdirSync(root)].filter((n) => !before.has(n))).toEqual([]);
    expect(existsSync(path.join(root, 'trail'))).toBe(false);
  });

  it('resolves a path set in one file of a policy directory against that file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-paths-dir-'));
    writeFileSync(
      path.join(dir, '10-core.yaml'),
      `version: 1
upstreams: { app: { url: "${upstreamUrl}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
`,
    );
    writeFileSync(path.join(dir, '20-audit.yaml'), 'version: 1\naudit:\n  sinks:\n    - file: { path: ./audit.ndjson }\n');
    const serving = await serveCli(dir);
    try {
      expect((await fetch(`${serving.proxy}/dir`)).status).toBe(200);
      await until('an event in the policy directory', () => lines(path.join(dir, 'audit.ndjson')).some((l) => l.includes('"/dir"')));
    } finally {
      await serving.stop();
    }
    expect(existsSync(path.join(root, 'audit.ndjson'))).toBe(false);
  });
});

describe('audit verify with a file that cannot be read', () => {
  it('says in one line that the file does not exist and exits 1, as validate does for a missing policy', async () => {
    const missing = path.join(os.tmpdir(), 'pcs-no-such-audit-file.ndjson');
    const r = await runCli(['audit', 'verify', missing]);
    expect(r.stderr).toBe(`portcullis audit verify: cannot read ${missing}: no such file\n`);
    expect(r.stdout).toBe('');
    expect(r.code).toBe(1);
    expect((await runCli(['validate', missing])).code).toBe(r.code);
  });

  it('says the same for audit report', async () => {
    const r = await runCli(['audit', 'report', '/nope']);
    expect(r.stderr).toBe('portcullis audit report: cannot read /nope: no such file\n');
    expect(r.code).toBe(1);
  });

  it('names a directory given as FILE instead of printing errno text', async () => {
    const r = await runCli(['audit', 'verify', os.tmpdir()]);
    expect(r.stderr).toBe(`portcullis audit verify: cannot read ${os.tmpdir()}: is a directory\n`);
    expect(r.code).toBe(1);
  });
});
