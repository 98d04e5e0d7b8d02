// The built CLI as a user runs it: `node dist/main.js …` from the repository root.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { freePort } from './ports.js';

export const root = new URL('../../', import.meta.url).pathname;
export const MAIN = 'dist/main.js';

export interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion. `env` adds variables (LOG_LEVEL defaults to warn); `unset` removes inherited ones. */
export function runCli(args: readonly string[], env: Record<string, string> = {}, unset: readonly string[] = []): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', ...env };
    for (const name of unset) delete childEnv[name];
    const child = spawn(process.execPath, [MAIN, ...args], { cwd: root, env: childEnv });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Fails the suite early, and clearly, when the CLI was not built. */
export function requireBuiltCli(): void {
  if (!existsSync(`${root}${MAIN}`)) throw new Error('dist/main.js is missing: run `npm run build` (npm test does it first)');
}

export interface Serving {
  /** http://127.0.0.1:port of the proxy listener. */
  readonly proxy: string;
  /** http://127.0.0.1:port of the admin listener. */
  readonly admin: string;
  /** The proxy listener's port. */
  readonly port: number;
  /** The `serve` process, for tests that signal it or watch it exit. */
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

export interface ServeOptions {
  /** `--drain` (default 1s). */
  readonly drain?: string;
  /** More `serve` flags (`--tls-cert …`); with TLS on the proxy, `proxy` is still written http://. */
  readonly args?: readonly string[];
}

/** `portcullis serve --policy P` as a user starts it, once its admin /healthz answers. */
export async function serveCli(policy: string, env: Record<string, string> = {}, unset: readonly string[] = [], options: ServeOptions = {}): Promise<Serving> {
  requireBuiltCli();
  const [port, adminPort] = [await freePort(), await freePort()];
  const childEnv: NodeJS.ProcessEnv = { ...process.env, LOG_LEVEL: 'warn', ...env };
  for (const name of unset) delete childEnv[name];
  const child = spawn(
    process.execPath,
    [MAIN, 'serve', '--policy', policy, '--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${adminPort}`, '--drain', options.drain ?? '1s', ...(options.args ?? [])],
    {
      cwd: root,
      env: childEnv,
    },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  child.stdout.resume();
  const admin = `http://127.0.0.1:${adminPort}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  };
  const until = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${stderr}`);
    if (Date.now() > until) {
      await stop();
      throw new Error(`serve did not start: ${stderr}`);
    }
    if (
      await fetch(`${admin}/healthz`).then(
        (r) => r.ok,
        () => false,
      )
    )
      break;
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proxy: `http://127.0.0.1:${port}`, admin, port, child, stderr: () => stderr, stop };
}
