// `portcullis schema`: the policy's JSON Schema, for editors and policies/policy.schema.json.

import { policyJsonSchema } from '../policy/schema.js';
import { policyTestJsonSchema } from '../simulate/test-file.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis schema [--tests]

Prints the JSON Schema of the policy language (v1) on stdout. Point editors at it with
  # yaml-language-server: $schema=./policy.schema.json

Options:
  --tests  print the schema of policy test files (*.test.yaml) instead
  -h, --help
`;

export function schemaText(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`;
}

export function testSchemaText(): string {
  return `${JSON.stringify(policyTestJsonSchema(), null, 2)}\n`;
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { tests: { type: 'boolean' } });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  io.stdout(values.tests ? testSchemaText() : schemaText());
  return EXIT.ok;
}
