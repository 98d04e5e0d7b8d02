// What validation says about a policy: errors refuse it, warnings are printed and kept.
// Every diagnostic points at file:line:column and the key path, so an editor jump works.

export interface Diagnostic {
  readonly severity: 'error' | 'warning';
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Key path in the document, e.g. `routes[2].require[0]`. */
  readonly path: string;
  readonly message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const where = `${d.file}:${d.line}:${d.column}`;
  const prefix = d.severity === 'warning' ? 'warning: ' : '';
  return d.path ? `${where} ${prefix}${d.path}: ${d.message}` : `${where} ${prefix}${d.message}`;
}

/** A policy that cannot be used. Thrown by load/compile; the running Plan stays. */
export class PolicyError extends Error {
  readonly diagnostics: readonly Diagnostic[];
  constructor(diagnostics: readonly Diagnostic[]) {
    super(
      diagnostics
        .filter((d) => d.severity === 'error')
        .map(formatDiagnostic)
        .join('\n') || 'invalid policy',
    );
    this.name = 'PolicyError';
    this.diagnostics = diagnostics;
  }
}
