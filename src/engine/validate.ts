// The validate core behind `portcullis validate` (and `explain`/`test`, which need the Plan): the
// policy built into a Plan in one run, every diagnostic (errors and warnings) returned instead of thrown.

import type { Plan } from '../core/plan.js';
import { type BuiltPolicy, buildPolicy } from '../policy/build.js';
import { type Diagnostic, PolicyError } from '../policy/diagnostics.js';
import type { LoadOptions } from '../policy/load.js';
import type { SourceMap } from '../policy/source-map.js';
import { compilePolicy } from './compile.js';

export type ValidationResult =
  | {
      readonly ok: true;
      readonly plan: Plan;
      readonly diagnostics: readonly Diagnostic[];
      /** Placeholders that stood in for unset variables (LoadOptions.unsetEnv), also among the diagnostics. */
      readonly placeholders: readonly Diagnostic[];
      /** Where each key of the policy was written (for checks made after compiling). */
      readonly sourceMap: SourceMap;
    }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** The policy at `path` as a Plan; PolicyError carries every diagnostic of the run. */
export function buildPlan(path: string, options: LoadOptions = {}): Promise<BuiltPolicy<Plan>> {
  return buildPolicy(compilePolicy, path, options);
}

export async function validatePolicy(path: string, options: LoadOptions = {}): Promise<ValidationResult> {
  try {
    const { plan, warnings, placeholders, loaded } = await buildPlan(path, options);
    return { ok: true, plan, diagnostics: warnings, placeholders, sourceMap: loaded.sourceMap };
  } catch (err) {
    if (err instanceof PolicyError) return { ok: false, diagnostics: err.diagnostics }; // in file order already
    throw err;
  }
}
