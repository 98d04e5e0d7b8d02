// `portcullis audit verify FILE...` and `portcullis audit report FILE... [--since 30d] [--format md|json]`.
import { verifyFiles } from '../audit/verify.js';
import { buildReport, reportMarkdown } from '../audit/report.js';
import { parseDuration } from '../policy/values.js';
import { EXIT, parseFlags, UsageError, type CliIo } from './command.js';

export const usage = `portcullis audit — verify and report on audit logs

Usage:
  portcullis audit verify FILE...                         check the hash chain (rotated segments oldest first)
  portcullis audit report FILE... [--since 30d] [--format md|json]

verify exits 0 with "N events, chain intact", or 1 naming the first broken link
(file:line and kind: edited, deleted, inserted, reordered).
`;

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    io.stdout(usage);
    return EXIT.ok;
  }
  if (sub === 'verify') {
    const { positionals } = parseFlags(rest, {});
    if (positionals.length === 0) throw new UsageError('audit verify needs at least one FILE');
    let r;
    try {
      r = verifyFiles(positionals);
    } catch (err) {
      io.stderr(`portcullis audit verify: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    if (r.ok) {
      io.stdout(`${r.events} events, chain intact${r.head ? ` (head seq ${r.head.seq} ${r.head.hash})` : ''}\n`);
      return EXIT.ok;
    }
    const b = r.broken!;
    io.stdout(`${b.file}:${b.line}: chain broken (${b.kind}): ${b.message}\n${r.events} events verified before the break\n`);
    return EXIT.failed;
  }
  if (sub === 'report') {
    const { values, positionals } = parseFlags(rest, { since: { type: 'string' }, format: { type: 'string', default: 'md' } });
    if (positionals.length === 0) throw new UsageError('audit report needs at least one FILE');
    if (values.format !== 'md' && values.format !== 'json') throw new UsageError('--format must be md or json');
    let since: number | undefined;
    if (values.since !== undefined) {
      try {
        since = parseDuration(values.since);
      } catch {
        throw new UsageError(`--since: not a duration: ${values.since}`);
      }
    }
    let report;
    try {
      report = buildReport(positionals, since);
    } catch (err) {
      io.stderr(`portcullis audit report: ${(err as Error).message}\n`);
      return EXIT.failed;
    }
    io.stdout(values.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : reportMarkdown(report));
    return EXIT.ok;
  }
  throw new UsageError(sub === undefined ? 'audit needs a subcommand: verify | report' : `unknown audit subcommand "${sub}"`);
}
