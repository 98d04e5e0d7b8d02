// `portcullis schema`: the policy's JSON Schema, for editors and policies/policy.schema.json.
import { policyJsonSchema } from '../policy/schema.js';
import { EXIT, parseFlags, UsageError, type CliIo } from './command.js';

export const usage = `Usage: portcullis schema

Prints the JSON Schema of the policy language (v1) on stdout. Point editors at it with
  # yaml-language-server: $schema=./policy.schema.json
`;

export function schemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { positionals } = parseFlags(argv, {});
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  io.stdout(schemaText());
  return EXIT.ok;
}
