// What every `portcullis <command>` module exports, and the helpers they share. A command returns
// its exit code; it throws UsageError for bad invocations (exit 2, usage printed).
import { parseArgs, type ParseArgsConfig } from 'node:util';

export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
  readonly env: NodeJS.ProcessEnv;
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

/** node:util parseArgs, strict: an unknown flag or a missing value is a UsageError. */
export function parseFlags<O extends Options>(argv: readonly string[], options: O) {
  try {
    return parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** A command that a later issue delivers: listed in help, answers plainly until then. */
export function notAvailable(name: string, issue: number, summary: string): CommandModule {
  const message = `portcullis ${name}: not available yet (issue ${issue})\n`;
  return {
    usage: `portcullis ${name} — ${summary}\n\nNot available yet (issue ${issue}).\n`,
    run: async (_argv, io) => {
      io.stderr(message);
      return EXIT.usage;
    },
  };
}
