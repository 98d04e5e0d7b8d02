// Compiles a policy shipped in a deploy example exactly as `serve` would, from text or a directory.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compilePolicy } from '../../../src/engine/compile.js';
import { loadPolicySource } from '../../../src/policy/load.js';
import type { Plan } from '../../../src/core/plan.js';

export async function compileDir(dir: string, env: NodeJS.ProcessEnv): Promise<Plan> {
  return compilePolicy(await loadPolicySource(dir, { env })).plan;
}

/** Writes files (name → YAML text) to a temporary directory, as a ConfigMap mount would, and compiles it. */
export async function compileFiles(files: Record<string, string>, env: NodeJS.ProcessEnv): Promise<Plan> {
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-deploy-'));
  try {
    for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
    return await compileDir(dir, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
