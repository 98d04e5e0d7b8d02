// Signed checkpoints through the built CLI: a server signs its chain head at an interval and on
// SIGTERM, publishes the head (admin endpoint, log line), and `audit verify` with --expect-head,
// --key and --closed catches what a bare hash chain cannot: a trail cut off at its end.
import { type ChildProcess, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalWithoutHash, chainHash } from '../../src/audit/chain.js';
import { AuditPipeline } from '../../src/audit/pipeline.js';
import { planFor, requestRecord } from '../helpers/audit.js';
import { MAIN, requireBuiltCli, root, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

const KEY = `${'k'.repeat(20)}0123456789abcdef0123`;
const TOKEN = 'audit-head-test-token-0123456789abcdef';
const env = { AUDIT_CP_KEY: KEY, OTHER_KEY: 'x'.repeat(40) };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: Server;
let dir: string;
let auditFile: string;
/** What the server printed (logs on stdout, problems on stderr). */
let output = '';
/** The head GET /admin/audit/head gave while the server ran, before more events followed. */
let recorded: { seq: number; hash: string; expectHead: string };
let headWithoutToken = 0;

interface Ev {
  type: string;
  time: string;
  detail: Record<string, unknown> | null;
  chain: { instance: string; seq: number; prev: string; hash: string };
}
const read = (file: string): string[] => readFileSync(file, 'utf8').trimEnd().split('\n');
const write = (file: string, lines: readonly string[]): string => {
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
};
const verify = (...args: string[]) => runCli(['audit', 'verify', ...args], env);

/** Re-links the chain from `from` on, as an attacker without the checkpoint key can. */
function rechain(lines: string[], from: number): string[] {
  const out = lines.slice(0, from);
  let prev = from === 0 ? '0'.repeat(64) : (JSON.parse(out[from - 1]!) as Ev).chain.hash;
  for (const l of lines.slice(from)) {
    const e = JSON.parse(l) as Ev;
    e.chain.prev = prev;
    e.chain.hash = chainHash(prev, canonicalWithoutHash(e as unknown as Record<string, unknown>));
    prev = e.chain.hash;
    out.push(JSON.stringify(e));
  }
  return out;
}

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-cp-'));
  auditFile = path.join(dir, 'audit.ndjson');
  const policy = path.join(dir, 'policy.yaml');
  writeFileSync(
    policy,
    `version: 1
upstreams: { app: { url: "http://127.0.0.1:${(upstream.address() as AddressInfo).port}" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  chain: true
  checkpoint: { key: "env:AUDIT_CP_KEY", interval: 300ms }
  sinks:
    - file: { path: ${JSON.stringify(auditFile)} }
`,
  );
  const [port, adminPort] = [await freePort(), await freePort()];
  const proxy = `http://127.0.0.1:${port}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const child: ChildProcess = spawn(process.execPath, [MAIN, 'serve', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--drain', '1s'], {
    cwd: root,
    env: { ...process.env, ...env, LOG_LEVEL: 'info', PORTCULLIS_ADMIN_TOKEN: TOKEN },
  });
  // Logs go to stdout (pino); both streams are kept for failure messages.
  child.stderr!.on('data', (d) => (output += d));
  child.stdout!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    const until = Date.now() + 20_000;
    while (
      !(await fetch(`${admin}/healthz`).then(
        (r) => r.ok,
        () => false,
      ))
    ) {
      if (child.exitCode !== null || Date.now() > until) throw new Error(`serve did not start: ${output}`);
      await sleep(50);
    }
    for (let i = 0; i < 20; i++) await (await fetch(`${proxy}/first/${i}`)).arrayBuffer();
    // Wait for a checkpoint that covers those requests, then record the head as an auditor would.
    for (;;) {
      const head = (await (await fetch(`${admin}/admin/audit/head`, { headers: { authorization: `Bearer ${TOKEN}` } })).json()) as { checkpoint: typeof recorded | null };
      if (head.checkpoint && head.checkpoint.seq > 20) {
        recorded = head.checkpoint;
        break;
      }
      if (Date.now() > until) throw new Error('no checkpoint was published');
      await sleep(100);
    }
    for (let i = 0; i < 10; i++) await (await fetch(`${proxy}/later/${i}`)).arrayBuffer();
    headWithoutToken = (await fetch(`${admin}/admin/audit/head`)).status;
  } finally {
    child.kill('SIGTERM');
  }
  expect(await exited).toBe(0);
});

afterAll(() => new Promise((r) => upstream.close(r)));

describe('audit checkpoints (built CLI)', () => {
  it('verifies an intact trail with its key and its closing checkpoint', async () => {
    const r = await verify(auditFile, '--key', 'env:AUDIT_CP_KEY', '--closed', '--expect-head', recorded.expectHead);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/chain intact/);
    expect(r.stdout).toMatch(/checkpoint signature\(s\) verified/);
    expect(r.stdout).toMatch(new RegExp(`expected head seq ${recorded.seq} is present`));
    const events = read(auditFile).map((l) => JSON.parse(l) as Ev);
    expect(events.at(-1)).toMatchObject({ type: 'audit.checkpoint', detail: { reason: 'shutdown', alg: 'hmac-sha256' } });
  });

  it('publishes the head only to callers with the admin token', () => {
    expect(headWithoutToken).toBe(401);
    expect(recorded.expectHead).toBe(`${recorded.seq}:${recorded.hash}`);
  });

  it('publishes each checkpoint as a log line naming the head', () => {
    const events = read(auditFile).map((l) => JSON.parse(l) as Ev);
    const closing = events.at(-1)!;
    const line = output.split('\n').find((l) => l.includes('"audit checkpoint"') && l.includes(closing.chain.hash));
    expect(
      line,
      output
        .split('\n')
        .filter((l) => l.includes('checkpoint'))
        .join('\n'),
    ).toBeDefined();
    expect(JSON.parse(line!)).toMatchObject({ audit: { seq: closing.chain.seq, hash: closing.chain.hash, reason: 'shutdown' } });
  });

  it('fails --expect-head when the last events were deleted, though the chain alone still verifies', async () => {
    const lines = read(auditFile);
    const recordedAt = lines.findIndex((l) => l.includes(`"hash":"${recorded.hash}"`));
    const cut = write(path.join(dir, 'cut.ndjson'), lines.slice(0, recordedAt - 3));
    expect((await verify(cut)).code).toBe(0); // what a bare hash chain cannot see
    const r = await verify(cut, '--expect-head', recorded.expectHead);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(`verification failed \\(truncated\\): the files end at seq ${recorded.seq - 4}, before the expected head seq ${recorded.seq}: at least 4 event\\(s\\) are missing from the end`),
    );
  });

  it('fails --expect-head when the event at that seq is another one', async () => {
    const r = await verify(auditFile, '--expect-head', `${recorded.seq}:${'0'.repeat(64)}`);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\(mismatch\): the event at seq \d+ has hash/);
  });

  it('reports a trail cut after the recorded head as lacking its closing checkpoint: a warning, an error with --closed', async () => {
    const cut = write(path.join(dir, 'tail.ndjson'), read(auditFile).slice(0, -3));
    const warned = await verify(cut, '--key', 'env:AUDIT_CP_KEY', '--expect-head', recorded.expectHead);
    expect(warned.code).toBe(0);
    expect(warned.stdout).toMatch(/event\(s\) after it are not covered by a signature/);
    expect(warned.stdout).toMatch(/warning: no closing checkpoint/);
    const failed = await verify(cut, '--key', 'env:AUDIT_CP_KEY', '--closed');
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/\(truncated\): no closing checkpoint/);
  });

  it('fails --key on a checkpoint whose signature was altered, even with the chain re-linked', async () => {
    const lines = read(auditFile);
    // The closing one: a checkpoint before others is pinned by the next one's signed head too.
    const at = lines.length - 1;
    const e = JSON.parse(lines[at]!) as Ev;
    const sig = String(e.detail!.sig);
    e.detail!.sig = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    lines[at] = JSON.stringify(e);
    const forged = write(path.join(dir, 'forged.ndjson'), rechain(lines, at));
    expect((await verify(forged)).code).toBe(0);
    const r = await verify(forged, '--key', 'env:AUDIT_CP_KEY');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(new RegExp(`forged.ndjson:${at + 1}: verification failed \\(signature\\): the checkpoint signature does not verify`));
  });

  it('fails --key with the wrong key', async () => {
    const r = await verify(auditFile, '--key', 'env:OTHER_KEY');
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/\(signature\): the checkpoint was signed with key [0-9a-f]{16}, not the given key [0-9a-f]{16}/);
  });

  it('refuses a key given on the command line', async () => {
    const r = await verify(auditFile, '--key', KEY);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--key takes env:NAME or file:PATH/);
  });

  it('says a report is over a broken chain and exits 1', async () => {
    const lines = read(auditFile);
    lines[3] = lines[3]!.replace('"status":200', '"status":201');
    const edited = write(path.join(dir, 'edited.ndjson'), lines);
    const r = await runCli(['audit', 'report', edited], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/chain BROKEN at .*edited\.ndjson:4 \(edited/);
    expect(r.stderr).toMatch(/chain broken \(edited\)/);
    const ok = await runCli(['audit', 'report', auditFile, '--key', 'env:AUDIT_CP_KEY'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/chain intact .*signature verified/);
  });

  it('verifies Ed25519 checkpoints with the public key alone', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const d = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-ed-'));
    const file = path.join(d, 'audit.ndjson');
    const pub = path.join(d, 'pub.pem');
    writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    const plan = {
      ...planFor(d, [{ kind: 'file', name: 'file', path: file, rotateBytes: 0, retainMs: 0, fsync: 'batch' }]),
      checkpoint: { key: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), alg: 'ed25519' as const, keyId: '', intervalMs: 60_000, events: 5 },
    };
    const p = new AuditPipeline(plan, { instance: 'ed' });
    for (let i = 0; i < 12; i++) {
      p.push(requestRecord(i));
      if (i % 5 === 4) p.flush();
    }
    await p.close();
    const types = read(file).map((l) => (JSON.parse(l) as Ev).type);
    expect(types.filter((t) => t === 'audit.checkpoint')).toHaveLength(3); // after 5, after 10, at close
    const r = await verify(file, '--key', `file:${pub}`, '--closed');
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/3 checkpoint signature\(s\) verified/);
    const wrong = path.join(d, 'other.pem');
    writeFileSync(wrong, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }));
    expect((await verify(file, '--key', `file:${wrong}`)).code).toBe(1);
  });

  it('refuses checkpoint settings that cannot work, with file:line:col', async () => {
    const d = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-cpv-'));
    const bad = path.join(d, 'bad.yaml');
    writeFileSync(
      bad,
      `version: 1
upstreams: { app: { url: "http://127.0.0.1:1" } }
routes:
  - { name: open, match: { path: "/**" }, public: true }
audit:
  chain: true
  checkpoint:
    key: env:SHORT_KEY
    algorithm: hmac-sha256
  sinks: [ { stdout: {} } ]
`,
    );
    const r = await runCli(['validate', bad], { SHORT_KEY: 'too-short' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/bad\.yaml:8:10 audit\.checkpoint\.key: an hmac-sha256 checkpoint key needs at least 32 bytes/);
    writeFileSync(bad, readFileSync(bad, 'utf8').replace('chain: true', 'chain: false'));
    const unchained = await runCli(['validate', bad], { SHORT_KEY: KEY });
    expect(unchained.code).toBe(1);
    expect(unchained.stderr).toMatch(/bad\.yaml:7:3 audit\.checkpoint: checkpoints sign the head of the hash chain/);
  });
});
