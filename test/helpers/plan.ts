// Plans for tests, compiled from policy text through the real loader and compiler exactly as
// `serve` compiles them: a test that needs a Plan states the policy it means instead of building
// an object that only looks like one.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan } from '../../src/core/plan.js';
import { compilePolicy } from '../../src/engine/compile.js';
import { loadPolicySource } from '../../src/policy/load.js';

export interface PlanOptions {
  /** What `env:` values resolve against; none by default, so the runner's environment never leaks in. */
  readonly env?: NodeJS.ProcessEnv;
  /** Files written beside the policy (name → content), for its `file:` values. */
  readonly files?: Readonly<Record<string, string>>;
}

/** The Plan of one policy file with this text. */
export async function planFrom(yaml: string, options: PlanOptions = {}): Promise<Plan> {
  return inTempDir({ ...options.files, 'policy.yaml': yaml }, (dir) => planAt(join(dir, 'policy.yaml'), options.env));
}

/** The Plan of a policy directory holding these files (name → text), as a ConfigMap mount would. */
export async function planFromFiles(files: Readonly<Record<string, string>>, env: NodeJS.ProcessEnv = {}): Promise<Plan> {
  return inTempDir(files, (dir) => planAt(dir, env));
}

/** The Plan of a policy file or directory on disk. */
export async function planAt(path: string, env: NodeJS.ProcessEnv = {}): Promise<Plan> {
  return compilePolicy(await loadPolicySource(path, { env })).plan;
}

async function inTempDir<T>(files: Readonly<Record<string, string>>, use: (dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'pcs-plan-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return await use(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
