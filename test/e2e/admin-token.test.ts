// `portcullis serve` and the admin token, as an operator starts it: off loopback a short or
// placeholder token stops the process before anything listens; a random one, or loopback, starts.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, requireBuiltCli, root } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';

let dir: string;
let policy: string;

beforeAll(() => {
  requireBuiltCli();
  dir = mkdtempSync(join(tmpdir(), 'portcullis-admin-token-'));
  policy = join(dir, 'policy.yaml');
  writeFileSync(policy, 'version: 1\nupstreams: { app: { url: "http://127.0.0.1:9" } }\nroutes:\n  - { name: all, match: { path: "/**" }, public: true }\n');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Starts serve; resolves with its exit (code, stderr) or, once its admin /healthz answers, 'up'. */
async function serve(adminHost: string, token: string): Promise<{ outcome: 'up' | 'exited'; code: number | null; stderr: string; stdout: string; adminPort: number }> {
  const [port, adminPort] = [await freePort(), await freePort()];
  const admin = adminHost.includes(':') ? `[${adminHost}]:${adminPort}` : `${adminHost}:${adminPort}`;
  const child = spawn(process.execPath, [MAIN, 'serve', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', admin, '--drain', '0s'], {
    cwd: root,
    env: { ...process.env, LOG_LEVEL: 'warn', PORTCULLIS_ADMIN_TOKEN: token },
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.on('data', (d) => (stdout += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) return { outcome: 'exited', code: child.exitCode, stderr, stdout, adminPort };
    if (
      await fetch(`http://127.0.0.1:${adminPort}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  const up = child.exitCode === null;
  child.kill('SIGTERM');
  const code = await exited;
  return { outcome: up ? 'up' : 'exited', code, stderr, stdout, adminPort };
}

describe('portcullis serve with an admin listener off loopback', () => {
  it('refuses to start with a short token, exit 1, and says why', async () => {
    const r = await serve('0.0.0.0', 'hunter2-but-longer');
    expect(r.outcome).toBe('exited');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`portcullis serve: the admin listener 0.0.0.0:${r.adminPort} is not a loopback address`);
    expect(r.stderr).toContain('it is 18 bytes long; at least 32 are required');
    expect(r.stderr).toContain('openssl rand -hex 32');
  });

  it('refuses the placeholder the Kubernetes examples used to ship', async () => {
    const r = await serve('0.0.0.0', 'replace-me-with-a-long-random-token');
    expect(r.outcome).toBe('exited');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/looks like a placeholder \(it contains "replaceme"\)/);
  });

  it('starts with a random 32-byte token', async () => {
    const r = await serve('0.0.0.0', randomBytes(32).toString('hex'));
    expect(r.stderr).toBe('');
    expect(r.outcome).toBe('up');
  });

  it('starts without a token, the admin API disabled', async () => {
    const r = await serve('0.0.0.0', '');
    expect(r.outcome).toBe('up');
  });
});

describe('portcullis serve with an admin listener on loopback', () => {
  it('starts with a short token and warns that it is weak', async () => {
    const r = await serve('127.0.0.1', 'short');
    expect(r.outcome).toBe('up');
    expect(r.stdout).toContain(`PORTCULLIS_ADMIN_TOKEN is weak (it is 5 bytes long; at least 32 are required); accepted only because the admin listener 127.0.0.1:${r.adminPort} is loopback`);
  });
});
