// The built CLI as a user runs it: `node dist/main.js …` (npm test's pretest builds dist/).
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAIN, type Ran, requireBuiltCli, root, runCli } from '../helpers/cli.js';
import { nodeFlags } from '../helpers/node-flags.js';
import { freePort } from '../helpers/redis.js';

const TOKEN = 'e2e-admin-token';

const cli = (args: string[], env: Record<string, string> = {}): Promise<Ran> => runCli(args, env);

beforeAll(requireBuiltCli);

describe('the portcullis CLI', () => {
  it('is an executable node script', () => {
    const main = new URL(MAIN, `file://${root}`);
    expect(readFileSync(main, 'utf8').split('\n', 1)[0]).toBe(`#!/usr/bin/env -S node ${nodeFlags().join(' ')}`);
    expect(nodeFlags('dist/main.js')).toEqual(['--no-memory-reducer']);
    expect(statSync(main).mode & 0o111).not.toBe(0);
  });

  it('prints the version from package.json', async () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { version: string };
    const r = await cli(['--version']);
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('lists every command in --help, and each command has its own --help', async () => {
    const r = await cli(['--help']);
    expect(r.code).toBe(0);
    for (const c of ['serve', 'validate', 'schema', 'test', 'explain', 'keys', 'audit', 'bench', 'diff', 'usage']) expect(r.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    const serve = await cli(['serve', '--help']);
    expect(serve.code).toBe(0);
    expect(serve.stdout).toContain('--drain DURATION');
    const validate = await cli(['validate', '--help']);
    expect(validate.stdout).toContain('Usage: portcullis validate PATH [--json]');
  });

  it('answers an unknown flag or command with a usage error, exit 2', async () => {
    const flag = await cli(['validate', '--nope', 'x']);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toMatch(/^portcullis validate: unknown option "--nope"\n/);
    expect(flag.stderr).toContain('Usage: portcullis validate');
    expect((await cli(['frobnicate'])).code).toBe(2);
    expect((await cli(['serve', '--listen', 'nowhere'])).code).toBe(2);
  });

  it("suggests the closest flag for a misspelt one, in its own words rather than the argument parser's", async () => {
    const typo = await cli(['serve', '--listn', '127.0.0.1:0']);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toMatch(/^portcullis serve: unknown option "--listn" \(did you mean "--listen"\?\)\n/);
    expect(typo.stderr).not.toMatch(/positional|place it at the end/);
    const missing = await cli(['validate', 'x', '--json=yes']);
    expect(missing.stderr).toMatch(/^portcullis validate: option "--json" takes no value\n/);
    const noValue = await cli(['explain', 'policies', '--method']);
    expect(noValue.code).toBe(2);
    expect(noValue.stderr).toMatch(/^portcullis explain: option "--method" needs a value\n/);
  });

  it('validates a good policy with exit 0, printing its warnings on stderr', async () => {
    const r = await cli(['validate', 'test/fixtures/e2e/valid.yaml']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/valid \(3 routes, 1 upstream, 1 warning;/);
    expect(r.stderr).toMatch(/^test\/fixtures\/e2e\/valid\.yaml:10:5 warning: routes\[2\]: route "reports" is never reached/m);
  });

  it('refuses a broken policy with exit 1 and file:line:col key.path: message on stderr', async () => {
    const r = await cli(['validate', 'test/fixtures/e2e/broken.yaml']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/^test\/fixtures\/e2e\/broken\.yaml:5:26 upstreams\.app\.timeouts\.connect: expected a duration/m);
  });

  it('speaks of a multi-document file, a binary file and a long value in its own words, on one line each', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcs-validate-'));
    try {
      writeFileSync(join(dir, 'multi.yaml'), 'version: 1\n---\nversion: 1\n');
      writeFileSync(join(dir, 'binary.yaml'), Buffer.concat([Buffer.from('version: 1\n\x7fELF'), Buffer.alloc(2000, 0)]));
      writeFileSync(join(dir, 'long.yaml'), `version: 1\nupstreams: "${'a'.repeat(5000)}"\n`);
      const multi = await cli(['validate', join(dir, 'multi.yaml')]);
      expect(multi.code).toBe(1);
      expect(multi.stderr).toContain(`${join(dir, 'multi.yaml')}:2:1 a file holds one YAML document, and a second one starts here`);
      expect(multi.stderr).not.toMatch(/parseAllDocuments|YAML\./);
      const binary = await cli(['validate', join(dir, 'binary.yaml')]);
      expect(binary.code).toBe(1);
      expect(binary.stderr).toBe(`${join(dir, 'binary.yaml')}:2:5 not a YAML text file: it holds a NUL byte or bytes that are not UTF-8\n${join(dir, 'binary.yaml')}: invalid policy (1 error)\n`);
      const long = await cli(['validate', join(dir, 'long.yaml')]);
      expect(long.code).toBe(1);
      expect(long.stderr.split('\n')[0]!.length).toBeLessThan(200);
      expect(long.stderr).toContain('upstreams: expected a mapping, got string "aaaa');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports as JSON with --json', async () => {
    const bad = await cli(['validate', '--json', 'test/fixtures/e2e/broken.yaml']);
    expect(bad.code).toBe(1);
    const body = JSON.parse(bad.stdout) as { valid: boolean; errors: { line: number; column: number; path: string }[]; warnings: unknown[] };
    expect(body.valid).toBe(false);
    expect(body.errors).toEqual([expect.objectContaining({ line: 5, column: 26, path: 'upstreams.app.timeouts.connect' })]);
    const good = await cli(['validate', 'test/fixtures/e2e/valid.yaml', '--json']);
    expect(good.code).toBe(0);
    expect(JSON.parse(good.stdout)).toMatchObject({ valid: true, errors: [], warnings: [expect.objectContaining({ path: 'routes[2]' })] });
  });

  it('prints the policy JSON Schema', async () => {
    const r = await cli(['schema']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ title: 'Portcullis policy v1', type: 'object' });
  });
});

describe('portcullis keys hash', () => {
  const hashOf = (args: string[], input: string | undefined): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, 'keys', 'hash', ...args], { cwd: root, stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.on('data', (d) => (stdout += d));
      child.stderr!.on('data', (d) => (stderr += d));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      if (input !== undefined) child.stdin!.end(input);
    });
  const TEST_DIGEST = 'sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n';

  it('reads the key from standard input for "-" or no argument, so it stays out of shell history and ps', async () => {
    expect(await hashOf(['-'], 'test\n')).toEqual({ code: 0, stdout: TEST_DIGEST, stderr: '' });
    expect(await hashOf([], 'test')).toEqual({ code: 0, stdout: TEST_DIGEST, stderr: '' });
    expect((await hashOf(['test'], undefined)).stdout).toBe(TEST_DIGEST);
  });

  it('refuses an empty standard input rather than hashing nothing', async () => {
    const r = await hashOf(['-'], '');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^portcullis keys: standard input held no key\n/);
  });
});

describe('portcullis serve --demo', () => {
  let child: ChildProcess;
  let proxy: string;
  let admin: string;
  let stdout = '';
  let stderr = '';

  beforeAll(async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    proxy = `http://127.0.0.1:${port}`;
    admin = `http://127.0.0.1:${adminPort}`;
    child = spawn(process.execPath, [MAIN, 'serve', '--demo', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--drain', '2s'], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'info', PORTCULLIS_ADMIN_TOKEN: TOKEN },
    });
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const until = Date.now() + 20_000;
    while (!stdout.includes('Stop with Ctrl-C')) {
      if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${stderr}${stdout}`);
      if (Date.now() > until) throw new Error(`serve did not print its demo banner: ${stderr}${stdout}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  });

  afterAll(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('says that node runs without the flags the portcullis executable passes', () => {
    expect(stdout).toContain('node runs without --no-memory-reducer');
  });

  it('prints the proxy URL and curl lines to try', () => {
    expect(stdout).toContain(`curl -i ${proxy}/healthz`);
    expect(stdout).toContain(`curl -i ${proxy}/v1/tenants/acme/reports/`);
  });

  it('prints a curl line with the demo API key, and that line is answered 200 with identity headers', async () => {
    const line = /curl -i -H 'x-api-key: (pcs_demo_acme_throwaway)' (\S+)/.exec(stdout);
    expect(line, stdout).not.toBeNull();
    const res = await fetch(line![2]!, { headers: { 'x-api-key': line![1]! } });
    expect(res.status).toBe(200);
    const echoed = JSON.stringify(await res.json());
    expect(echoed).toContain('x-auth-tenant');
    expect(echoed).not.toContain('pcs_demo_acme_throwaway');
  });

  it('answers a public route with 200 from the demo echo upstream', async () => {
    const res = await fetch(`${proxy}/healthz`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  });

  it('answers a protected route with 401 problem+json AUTH_MISSING', async () => {
    const res = await fetch(`${proxy}/v1/tenants/acme/reports/q1`);
    expect(res.status).toBe(401);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ status: 401, code: 'AUTH_MISSING' });
  });

  it('serves /healthz, /readyz and /metrics on the admin listener', async () => {
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toMatch(/^portcullis_requests_total\{.*route="health".*\} \d+/m);
  });

  it('reloads the policy on SIGHUP', async () => {
    const reloads = async (): Promise<number> => {
      const text = await (await fetch(`${admin}/metrics`)).text();
      return Number(/^portcullis_policy_reloads_total\{result="success"\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const before = await reloads();
    child.kill('SIGHUP');
    const until = Date.now() + 10_000;
    while ((await reloads()) === before) {
      if (Date.now() > until) throw new Error(`no reload after SIGHUP: ${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await reloads()).toBe(before + 1);
    const policy = await fetch(`${admin}/admin/policy`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(policy.status).toBe(200);
  });

  it('drains and exits 0 on SIGTERM', async () => {
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

describe('the portcullis executable, run as itself', () => {
  it('starts node with the flags on its first line, serves, and stops on SIGTERM', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const child = spawn(`${root}${MAIN}`, ['serve', '--demo', '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--drain', '1s'], {
      cwd: root,
      env: { ...process.env, LOG_LEVEL: 'info' },
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      const until = Date.now() + 20_000;
      // The notice would come before "portcullis listening", on the same stream.
      while (!out.includes('Stop with Ctrl-C') || !out.includes('portcullis listening')) {
        if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${out}`);
        if (Date.now() > until) throw new Error(`serve did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(out).toContain('portcullis listening');
      expect(out).not.toContain('node runs without');
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});

describe('npm start', () => {
  it('runs node with the same flags as the executable', () => {
    const pkg = JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${nodeFlags().join(' ')} dist/main.js serve --demo`);
  });
});
