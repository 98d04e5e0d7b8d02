// The built CLI as a user runs it: `node dist/main.js …` from the repository root.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

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
