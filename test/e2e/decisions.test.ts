// The decision listener through the built CLI: `serve --listen off --decisions` as a pure decision
// service, the demo banner, and the concurrency refusal in `validate --decisions` and `serve`.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { MAIN, requireBuiltCli, root, runCli } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

const dir = mkdtempSync(join(tmpdir(), 'pcs-e2e-decisions-'));
const policyFile = (name: string, extra = '') => {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1
trustedProxies: [127.0.0.1/32]
upstreams: { app: { url: "http://127.0.0.1:9" } }
routes:
  - { name: public, match: { path: "/public/**" }, public: true }
${extra}`,
  );
  return file;
};
const CONCURRENCY = 'tenants:\n  tiers:\n    narrow: { concurrency: 2 }\n';

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
});

function serve(args: string[]): { child: ChildProcess; out: () => string; err: () => string } {
  requireBuiltCli();
  const child = spawn(process.execPath, [MAIN, 'serve', '--admin', 'off', ...args], { cwd: root, env: { ...process.env, LOG_LEVEL: 'info' } });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  return { child, out: () => out, err: () => err };
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function forwardAuth(port: number, uri: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/forward-auth', headers: { 'x-forwarded-method': 'GET', 'x-forwarded-host': 'shop.example', 'x-forwarded-uri': uri }, agent: false },
      (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

describe('portcullis serve --decisions', () => {
  it('runs a pure decision service with --listen off, and stops cleanly on SIGTERM', async () => {
    const port = await freePort();
    const s = serve(['--policy', policyFile('pure'), '--listen', 'off', '--decisions', `127.0.0.1:${port}`]);
    await until(() => s.out().includes('portcullis listening') || s.err().includes('portcullis listening'), 'the listening line');
    expect((await forwardAuth(port, '/public/x')).status).toBe(200);
    expect((await forwardAuth(port, '/nowhere')).status).toBe(404);
    const exited = new Promise<number | null>((r) => s.child.once('exit', r));
    s.child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('refuses --listen off without a decision listener: nothing would serve', async () => {
    const r = await runCli(['serve', '--policy', policyFile('nothing'), '--listen', 'off', '--admin', 'off']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--decisions');
  });

  it('prints how to try the decision listener in --demo', async () => {
    const [port, decisions] = [await freePort(), await freePort()];
    const s = serve(['--policy', policyFile('demo'), '--listen', `127.0.0.1:${port}`, '--decisions', `127.0.0.1:${decisions}`, '--demo']);
    await until(() => s.out().includes('Stop with Ctrl-C.'), 'the demo banner');
    expect(s.out()).toContain(`Decision listener on http://127.0.0.1:${decisions}`);
    expect(s.out()).toContain(`-H 'X-Forwarded-Uri: /public/hello' http://127.0.0.1:${decisions}/forward-auth`);
  });

  it('refuses to serve decisions for a policy with concurrency limits, naming the key', async () => {
    const file = policyFile('concurrency', CONCURRENCY);
    const r = await runCli(['serve', '--policy', file, '--listen', 'off', '--admin', 'off', '--decisions', `127.0.0.1:${await freePort()}`]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`${file}:8:`);
    expect(r.stderr).toContain('tenants.tiers.narrow.concurrency');
  });
});

describe('portcullis validate --decisions', () => {
  it('refuses concurrency limits at their key, and only with --decisions', async () => {
    const file = policyFile('validate', CONCURRENCY);
    expect((await runCli(['validate', file])).code).toBe(0);
    const r = await runCli(['validate', file, '--decisions']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(new RegExp(`${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:8:\\d+ tenants\\.tiers\\.narrow\\.concurrency: concurrency cannot be limited through a decision listener`));
  });
});
