// The validate core behind `portcullis validate` (and `explain`/`test`, which need the Plan):
// load + compile, returning every diagnostic (errors and warnings) instead of throwing.
import { compilePolicy } from './compile.js';
import { PolicyError, type Diagnostic } from '../policy/diagnostics.js';
import { loadPolicySource, type LoadOptions } from '../policy/load.js';
import type { Plan } from '../core/plan.js';

export type ValidationResult =
  | { readonly ok: true; readonly plan: Plan; readonly diagnostics: readonly Diagnostic[] }
  | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

/** Errors first, then warnings, each in file/line/column order. */
function ordered(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const rank = (d: Diagnostic): number => (d.severity === 'error' ? 0 : 1);
  return [...diagnostics].sort(
    (a, b) => rank(a) - rank(b) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.column - b.column,
  );
}

export async function validatePolicy(path: string, options: LoadOptions = {}): Promise<ValidationResult> {
  try {
    const { plan, warnings } = compilePolicy(await loadPolicySource(path, options));
    return { ok: true, plan, diagnostics: ordered(warnings) };
  } catch (err) {
    if (err instanceof PolicyError) return { ok: false, diagnostics: ordered(err.diagnostics) };
    throw err;
  }
}
