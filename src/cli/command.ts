// What every `portcullis <command>` module exports, and the helpers they share. A command returns
// its exit code; it throws UsageError for bad invocations (exit 2, usage printed).
import { type ParseArgsConfig, parseArgs } from 'node:util';
import { didYouMean } from '../policy/suggest.js';

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
  /** Standard input, for secrets that must not be passed on the command line. Absent: none. */
  readonly stdin?: { readonly isTTY: boolean; read(): Promise<string> };
}

export interface CommandModule {
  /** Full help text for `portcullis <command> --help`. */
  readonly usage: string;
  run(argv: readonly string[], io: CliIo): Promise<number>;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export const EXIT = Object.freeze({ ok: 0, failed: 1, usage: 2 });

type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * node:util parseArgs, strict: an unknown flag or a missing value is a UsageError, said in our
 * words (parseArgs's own text speaks of its API) with the closest known flag for a typo.
 */
export function parseFlags<O extends Options>(argv: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(flagError(err as NodeJS.ErrnoException, options));
  }
}

function flagError(err: NodeJS.ErrnoException, options: Options): string {
  const flags = Object.keys(options).map((name) => `--${name}`);
  const named = /'(-{1,2}[^' ]+)/.exec(err.message)?.[1] ?? '';
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option "${named}"${didYouMean(named, flags)}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      const name = named.replace(/^-+/, '');
      return options[name]?.type === 'boolean' ? `option "--${name}" takes no value` : `option "--${name}" needs a value`;
    }
    default:
      return err.message;
  }
}

/** "1 route", "2 routes": counts in CLI output read as English. */
export function counted(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`;
}
