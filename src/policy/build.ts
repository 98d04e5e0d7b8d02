// Load + compile in one run, whatever compiles the policy: returns every diagnostic of the run —
// YAML, env:/file:, schema and merge errors together with the semantic errors of the parts that
// loaded. A semantic finding inside a part that lost something to an earlier error is left out:
// it may only be that loss speaking (an upstream without its refused url).
import { type Diagnostic, PolicyError } from './diagnostics.js';
import { type LoadedPolicy, type LoadOptions, loadPolicyPartially } from './load.js';

/** Turns a loaded policy into what runs; throws PolicyError with every diagnostic when it cannot. */
export type PolicyCompiler<P> = (loaded: LoadedPolicy) => { plan: P; warnings: Diagnostic[] };

/** Errors first, then warnings, each in file/line/column order. */
function ordered(diagnostics: readonly Diagnostic[]): Diagnostic[] {
  const rank = (d: Diagnostic): number => (d.severity === 'error' ? 0 : 1);
  return [...diagnostics].sort((a, b) => rank(a) - rank(b) || (a.file < b.file ? -1 : a.file > b.file ? 1 : 0) || a.line - b.line || a.column - b.column);
}

export interface BuiltPolicy<P> {
  readonly plan: P;
  readonly warnings: Diagnostic[];
  readonly loaded: LoadedPolicy;
  readonly placeholders: readonly Diagnostic[];
}

/** Loads and compiles; PolicyError carries every diagnostic of the run, in file/line/column order. */
export async function buildPolicy<P>(compile: PolicyCompiler<P>, path: string, options: LoadOptions = {}): Promise<BuiltPolicy<P>> {
  const { loaded, errors, notes, inLeftOutPart } = await loadPolicyPartially(path, options);
  if (loaded === undefined) throw new PolicyError(ordered(errors));
  let compiled: { plan: P; warnings: Diagnostic[] } | undefined;
  let found: readonly Diagnostic[] = [];
  try {
    compiled = compile(loaded);
    found = compiled.warnings;
  } catch (err) {
    if (!(err instanceof PolicyError)) {
      // The salvaged parts passed the schema, so a throw is a bug; with load errors already in
      // hand those are the answer, not the crash.
      if (errors.length > 0) throw new PolicyError(ordered(errors));
      throw err;
    }
    found = err.diagnostics;
  }
  if (errors.length > 0 || compiled === undefined) {
    // Beside load errors only semantic errors are kept: a warning such as an unused upstream may
    // be about a route that was refused, and it will be said again once the policy loads whole.
    const semantic = errors.length > 0 ? found.filter((d) => d.severity === 'error' && !inLeftOutPart(d)) : found;
    throw new PolicyError(ordered([...errors, ...semantic]));
  }
  return { plan: compiled.plan, warnings: ordered([...notes, ...compiled.warnings]), loaded, placeholders: notes };
}
