// The built server audits through its worker thread: every request of a burst is in the chained
// file after SIGTERM (the last ones flushed on shutdown), the file verifies, and the worker's
// counters reach the main thread's /metrics.
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requireBuiltCli, runCli, type Serving, serveCli } from '../helpers/cli.js';

const REQUESTS = 300;
let upstream: Server;
let child: ChildProcess;
let dir: string;
let auditFile: string;
let proxy: string;
let admin: string;
let serving: Serving;

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-worker-'));
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
  sinks:
    - file: { path: ${JSON.stringify(auditFile)} }
`,
  );
  serving = await serveCli(policy);
  child = serving.child;
  proxy = serving.proxy;
  admin = serving.admin;
});

afterAll(async () => {
  await serving?.stop();
  await new Promise((r) => upstream?.close(r));
});

describe('serve with the audit worker', () => {
  it("reports the worker's written events on the main thread's /metrics", async () => {
    for (let i = 0; i < 20; i++) await (await fetch(`${proxy}/warm/${i}`)).arrayBuffer();
    const until = Date.now() + 10_000;
    let written = 0;
    while (written < 20 && Date.now() < until) {
      const text = await (await fetch(`${admin}/metrics`)).text();
      written = Number(/^portcullis_audit_events_total\{sink="file",result="written"\} (\d+)/m.exec(text)?.[1] ?? 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(written).toBeGreaterThanOrEqual(20);
  });

  it('has every request of a burst in the chained file after SIGTERM, and the file verifies', async () => {
    await Promise.all(Array.from({ length: REQUESTS }, (_, i) => fetch(`${proxy}/burst/${i}`).then((r) => r.arrayBuffer())));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    const events = readFileSync(auditFile, 'utf8')
      .trimEnd()
      .split('\n')
      .map((l) => JSON.parse(l) as { type: string; request: { path: string } | null });
    expect(events[0]!.type).toBe('policy.loaded');
    const burst = events.filter((e) => e.request?.path.startsWith('/burst/')).map((e) => e.request!.path);
    expect(new Set(burst).size).toBe(REQUESTS);
    const verify = await runCli(['audit', 'verify', auditFile]);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(new RegExp(`^${REQUESTS + 21} events, chain intact`));
  });
});
