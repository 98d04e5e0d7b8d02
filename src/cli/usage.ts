// `portcullis usage report FILE... [--since 30d] [--format md|json|csv] [--price-per-1k-tokens N]`:
// per tenant requests, denials, metered tokens, latency percentiles and an estimated cost, read
// from audit files (the audit trail is exact; the store keeps only the current windows).
import { buildUsageReport, usageCsv, usageMarkdown } from '../audit/usage-report.js';
import { parseDuration } from '../policy/values.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `portcullis usage — usage per tenant from the audit trail

Usage:
  portcullis usage report FILE... [--since 30d] [--format md|json|csv] [--price-per-1k-tokens N]
      Per tenant: requests, allowed, denied, metered tokens, latency p50/p95/p99 and, with a
      price, the estimated cost. FILE is an audit file (sinks: file), rotated ones included.
`;

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'report') throw new UsageError(sub === undefined ? 'usage needs a subcommand: report' : `unknown usage subcommand "${sub}"`);
  const { values, positionals } = parseFlags(rest, { since: { type: 'string' }, format: { type: 'string', default: 'md' }, 'price-per-1k-tokens': { type: 'string' } });
  if (positionals.length === 0) throw new UsageError('usage report needs at least one audit FILE');
  const format = values.format;
  if (format !== 'md' && format !== 'json' && format !== 'csv') throw new UsageError('--format must be md, json or csv');
  let sinceMs: number | undefined;
  if (values.since !== undefined) {
    try {
      sinceMs = parseDuration(values.since);
    } catch {
      throw new UsageError(`--since: not a duration: ${values.since}`);
    }
  }
  const priceText = values['price-per-1k-tokens'];
  const price = priceText === undefined ? undefined : Number(priceText);
  if (price !== undefined && !(Number.isFinite(price) && price >= 0 && priceText!.trim() !== '')) throw new UsageError(`--price-per-1k-tokens: not a price: ${priceText}`);
  let report: Awaited<ReturnType<typeof buildUsageReport>>;
  try {
    report = await buildUsageReport(positionals, { sinceMs, pricePer1kTokens: price });
  } catch (err) {
    io.stderr(`portcullis usage report: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `no such file: ${(err as { path?: string }).path}` : (err as Error).message}\n`);
    return EXIT.failed;
  }
  io.stdout(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : format === 'csv' ? usageCsv(report) : usageMarkdown(report));
  return EXIT.ok;
}
