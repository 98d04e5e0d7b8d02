// `portcullis audit verify FILE... [--key K] [--expect-head SEQ:HASH] [--closed]` and
// `portcullis audit report FILE... [--since 30d] [--format md|json] [--key K] [--expect-head SEQ:HASH]`.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { CheckpointVerifier } from '../audit/checkpoint.js';
import { buildReport, reportMarkdown } from '../audit/report.js';
import { CHAIN_BREAKS, parseExpectHead, type VerifyOptions, type VerifyResult, verifyFiles } from '../audit/verify.js';
import { parseDuration } from '../policy/values.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `portcullis audit — verify and report on audit logs

Usage:
  portcullis audit verify FILE... [--key env:NAME|file:PATH] [--expect-head SEQ:HASH] [--closed]
  portcullis audit report FILE... [--since 30d] [--format md|json] [--key …] [--expect-head …]

FILEs are one instance's segments, oldest first (rotated files, then the current one).

verify exits 0 with "N events, chain intact", or 1 naming the first problem as file:line and kind:
  edited, deleted, inserted, reordered, unchained, malformed   the hash chain is broken
  signature    a checkpoint does not verify with --key (tampered, or another key)
  unsigned     --key was given but no checkpoint signs anything
  truncated    the files end before --expect-head, or (--closed) lack the closing checkpoint
  mismatch     the event at --expect-head's seq is another one

  --key          the checkpoint key: the HMAC secret, or the Ed25519 public key (PEM)
  --expect-head  a head recorded earlier (GET /admin/audit/head, or the "audit checkpoint" log
                 line): the files must reach it and agree with it
  --closed       the writer was stopped cleanly (SIGTERM): a trail that does not end with its
                 closing checkpoint fails instead of warning

A hash chain alone cannot show that events were cut off its end: checkpoints prove everything up to
the last one, --expect-head proves the files reach a head you recorded, --closed that none was cut
after the last shutdown. report exits 1 (after printing) when verification fails.
`;

const verifyFlags = {
  key: { type: 'string' },
  'expect-head': { type: 'string' },
} as const;

/** `env:NAME` or `file:PATH` (relative to the working directory) → the key's text. */
function readKey(ref: string): string {
  if (ref.startsWith('env:')) {
    const v = process.env[ref.slice(4)];
    if (v === undefined || v === '') throw new UsageError(`--key ${ref}: the environment variable is not set`);
    return v;
  }
  if (ref.startsWith('file:')) {
    const file = path.resolve(ref.slice(5));
    try {
      // A trailing newline is how editors end files, never part of a key (as in the policy).
      return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new UsageError(`--key ${ref}: cannot read ${file}: ${(err as Error).message}`);
    }
  }
  throw new UsageError('--key takes env:NAME or file:PATH (a key never goes on the command line)');
}

function verifyOptions(values: { key?: string | undefined; 'expect-head'?: string | undefined; closed?: boolean | undefined }): VerifyOptions {
  let key: CheckpointVerifier | undefined;
  if (values.key !== undefined) {
    try {
      key = new CheckpointVerifier(readKey(values.key));
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`--key ${values.key}: ${(err as Error).message}`);
    }
  }
  let expectHead: VerifyOptions['expectHead'];
  if (values['expect-head'] !== undefined) {
    expectHead = parseExpectHead(values['expect-head']);
    if (!expectHead) throw new UsageError(`--expect-head: expected SEQ:HASH (a number, ":", 64 hex digits), got ${values['expect-head']}`);
  }
  return { ...(key ? { key } : {}), ...(expectHead ? { expectHead } : {}), ...(values.closed ? { closed: true } : {}) };
}

function describe(r: VerifyResult, o: VerifyOptions): string {
  let out = `${r.events} events, chain intact${r.head ? ` (head seq ${r.head.seq} ${r.head.hash})` : ''}\n`;
  const c = r.checkpoints;
  if (c && c.count > 0) {
    const l = c.last!;
    out += `last checkpoint: seq ${l.seq} at ${l.file}:${l.line}, ${l.time}, ${l.reason}, key ${l.keyId}; ${c.verified ? `${c.count} checkpoint signature(s) verified` : 'signatures not checked (pass --key)'}\n`;
    if (c.after > 0) out += `${c.after} event(s) after it are not covered by a signature\n`;
  }
  if (o.expectHead) out += `expected head seq ${o.expectHead.seq} is present and matches\n`;
  for (const w of r.warnings ?? []) out += `warning: ${w}\n`;
  return out;
}

const ERRNO_TEXT: Readonly<Record<string, string>> = { ENOENT: 'no such file', EACCES: 'permission denied', EPERM: 'permission denied', EISDIR: 'is a directory' };

/** A FILE that cannot be read, said in one line without Node's errno text (exit 1, as `validate` for a missing policy). */
function readProblem(err: unknown, file?: string): string {
  const e = err as NodeJS.ErrnoException;
  const at = typeof e.path === 'string' ? e.path : file;
  if (at !== undefined && e.code !== undefined) return `cannot read ${at}: ${ERRNO_TEXT[e.code] ?? e.code}`;
  return (err as Error).message;
}

/** The first FILE that is missing or not a file, said before any is read. */
function unreadable(files: readonly string[]): string | undefined {
  for (const file of files) {
    try {
      if (statSync(file).isDirectory()) return `cannot read ${file}: ${ERRNO_TEXT.EISDIR}`;
    } catch (err) {
      return readProblem(err, file);
    }
  }
  return undefined;
}

function brokenLine(r: VerifyResult): string {
  const b = r.broken!;
  const what = CHAIN_BREAKS.has(b.kind) ? 'chain broken' : 'verification failed';
  return `${b.file}:${b.line}: ${what} (${b.kind}): ${b.message}`;
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === '--help' || sub === '-h') {
    io.stdout(usage);
    return EXIT.ok;
  }
  if (sub === 'verify') {
    const { values, positionals } = parseFlags(rest, { ...verifyFlags, closed: { type: 'boolean' } });
    if (positionals.length === 0) throw new UsageError('audit verify needs at least one FILE');
    const o = verifyOptions(values);
    const problem = unreadable(positionals);
    if (problem !== undefined) {
      io.stderr(`portcullis audit verify: ${problem}\n`);
      return EXIT.failed;
    }
    let r: VerifyResult;
    try {
      r = verifyFiles(positionals, o);
    } catch (err) {
      io.stderr(`portcullis audit verify: ${readProblem(err)}\n`);
      return EXIT.failed;
    }
    if (r.ok) {
      io.stdout(describe(r, o));
      return EXIT.ok;
    }
    const events = CHAIN_BREAKS.has(r.broken!.kind) ? `${r.events} events verified before the break` : `${r.events} events, chain intact up to here`;
    io.stdout(`${brokenLine(r)}\n${events}\n`);
    return EXIT.failed;
  }
  if (sub === 'report') {
    const { values, positionals } = parseFlags(rest, { ...verifyFlags, since: { type: 'string' }, format: { type: 'string', default: 'md' } });
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
    const o = verifyOptions(values);
    const problem = unreadable(positionals);
    if (problem !== undefined) {
      io.stderr(`portcullis audit report: ${problem}\n`);
      return EXIT.failed;
    }
    let report: ReturnType<typeof buildReport>;
    try {
      report = buildReport(positionals, since, Date.now(), o);
    } catch (err) {
      io.stderr(`portcullis audit report: ${readProblem(err)}\n`);
      return EXIT.failed;
    }
    io.stdout(values.format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : reportMarkdown(report));
    if (report.chain.ok) return EXIT.ok;
    // Said on stderr as well, so a pipeline that keeps only the report still learns it.
    io.stderr(`portcullis audit report: ${brokenLine(report.chain)}\n`);
    return EXIT.failed;
  }
  throw new UsageError(sub === undefined ? 'audit needs a subcommand: verify | report' : `unknown audit subcommand "${sub}"`);
}
