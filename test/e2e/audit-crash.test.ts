// A process killed (SIGKILL) right after answering its first requests has their events in the
// audit file: the audit worker is up, with its file sinks open, before the proxy accepts, so the
// first request is audited as fast as any later one. The operations doc states 50 ms: the main
// thread's batch interval (20 ms) plus the worker's write (measured 27-34 ms from the response;
// before the worker was awaited at start-up, 630-1,190 ms).
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, requireBuiltCli, root } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

/** The documented bound (50 ms) plus margin for a loaded machine. */
const KILL_AFTER_MS = 150;
let upstream: Server;

beforeAll(async () => {
  requireBuiltCli();
  upstream = createServer((_req, res) => res.end('ok'));
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
});
afterAll(() => new Promise((r) => upstream.close(r)));

async function firstAnswer(url: string, deadline: number): Promise<void> {
  for (;;) {
    const ok = await fetch(url).then(
      async (r) => {
        await r.arrayBuffer();
        return true;
      },
      () => false,
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error('the proxy never answered');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('audit after a crash', () => {
  it.each([1, 2, 3])('has the first answered request in the audit file when the process is killed right after it (run %i)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'pcs-audit-crash-'));
    const auditFile = path.join(dir, 'audit.ndjson');
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
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN, 'serve', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', 'off'], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    try {
      await firstAnswer(`http://127.0.0.1:${port}/first`, Date.now() + 20_000);
      await new Promise((r) => setTimeout(r, KILL_AFTER_MS));
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    const text = existsSync(auditFile) ? readFileSync(auditFile, 'utf8') : '';
    expect(text, stderr).toContain('"path":"/first"');
  });
});
