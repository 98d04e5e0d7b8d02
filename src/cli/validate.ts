// `portcullis validate PATH [--json]`: the whole policy checked as `serve` would load it.

import { concurrencyDiagnostics } from '../decisions/concurrency-guard.js';
import { validatePolicy } from '../engine/validate.js';
import { type Diagnostic, formatDiagnostic } from '../policy/diagnostics.js';
import { type CliIo, counted, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis validate PATH [--json] [--decisions]

Loads and compiles the policy file or directory PATH exactly as serve would.
  exit 0  valid (warnings, if any, are printed on stderr)
  exit 1  invalid: every error is printed on stderr as  file:line:col key.path: message

Options:
  --json        print {"valid", "errors": [...], "warnings": [...]} on stdout instead
  --decisions   also refuse what a decision listener (serve --decisions) cannot enforce
  -h, --help
`;

const asJson = (d: Diagnostic) => ({ file: d.file, line: d.line, column: d.column, path: d.path, message: d.message, text: formatDiagnostic(d) });

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { json: { type: 'boolean' }, decisions: { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'PATH is required' : `unexpected argument "${positionals[1]}"`);
  const path = positionals[0]!;
  let result = await validatePolicy(path, { env: io.env });
  if (values.decisions && result.ok) {
    const sourceMap = result.sourceMap;
    const refused = concurrencyDiagnostics(result.plan, (p) => sourceMap.position(p));
    if (refused.length > 0) result = { ok: false, diagnostics: [...refused, ...result.diagnostics] };
  }
  const errors = result.diagnostics.filter((d) => d.severity === 'error');
  const warnings = result.diagnostics.filter((d) => d.severity === 'warning');
  if (values.json) {
    io.stdout(`${JSON.stringify({ valid: result.ok, errors: errors.map(asJson), warnings: warnings.map(asJson) }, null, 2)}\n`);
    return result.ok ? EXIT.ok : EXIT.failed;
  }
  for (const d of [...errors, ...warnings]) io.stderr(`${formatDiagnostic(d)}\n`);
  if (!result.ok) {
    io.stderr(`${path}: invalid policy (${counted(errors.length, 'error')})\n`);
    return EXIT.failed;
  }
  const plan = result.plan;
  const w = warnings.length > 0 ? `, ${counted(warnings.length, 'warning')}` : '';
  io.stdout(`${path}: valid (${counted(plan.routes.length, 'route')}, ${counted(plan.upstreams.size, 'upstream')}${w}; hash ${plan.hash.slice(0, 12)})\n`);
  return EXIT.ok;
}
