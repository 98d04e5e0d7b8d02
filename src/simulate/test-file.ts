// Policy test files (`*.test.yaml`): parsed with positions, validated by a zod schema, errors at
// file:line:col like policy errors. Each test is one request and the decision it must get.
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { REASON_CODES } from '../core/reasons.js';
import type { Diagnostic } from '../policy/diagnostics.js';
import { schemaDiagnostics } from '../policy/schema-errors.js';
import { nodePosition } from '../policy/source-map.js';
import { parseYamlFile, yamlValue } from '../policy/yaml.js';
import type { SimRequest } from './simulate.js';

const requestSchema = z
  .strictObject({
    method: z
      .string()
      .regex(/^[A-Za-z]+$/, 'expected an HTTP method')
      .describe('The request method, e.g. GET.'),
    path: z.string().min(1).describe('The request target as a client sends it (path and query, percent-encoding included): it goes through the same canonicaliser as a real request.'),
    host: z.string().optional().describe('The Host header; routes with `match.host` need it.'),
    ip: z.string().optional().describe('The client address the IP rules see (default 127.0.0.1).'),
    headers: z.record(z.string(), z.string()).optional().describe('More request headers, name → value.'),
    as: z
      .strictObject({
        tenant: z.string().optional(),
        roles: z.array(z.string()).optional(),
        permissions: z.array(z.string()).optional(),
        subject: z.string().optional(),
        claims: z.record(z.string(), z.unknown()).optional().describe('What route conditions read as principal.claims (default none).'),
      })
      .optional()
      .describe('A principal given directly (subject defaults to `test`), accepted by every route that needs credentials: tests authorization alone.'),
    apiKey: z.string().optional().describe('The id of a static key in authentication.apiKeys.keys: authenticates as that key would, expiry and disabled included.'),
    jwt: z
      .strictObject({ claims: z.record(z.string(), z.unknown()) })
      .optional()
      .describe(
        "A token carrying these claims, signed by a key that stands in for the policy's issuers; `iss` and `aud` of the first issuer, `sub: test-subject` and a 5-minute `exp` are filled in unless given: tests the claim mapping.",
      ),
    clientCert: z
      .strictObject({ uri: z.string().optional(), dns: z.string().optional(), cn: z.string().optional() })
      .optional()
      .describe("A client certificate the TLS handshake verified, with this URI SAN, DNS SAN and subject CN: mapped by the policy's authentication.mtls rules."),
  })
  .refine((r) => [r.as, r.apiKey, r.jwt, r.clientCert].filter((v) => v !== undefined).length <= 1, 'give at most one of as, apiKey, jwt, clientCert')
  .describe('The request to decide. Without as, apiKey, jwt or clientCert it carries no credentials (unless headers has some).');

const testSchema = z.strictObject({
  name: z.string().min(1).describe('What the test proves, as a sentence; printed when it fails.'),
  request: requestSchema,
  expect: z.unknown().refine((v) => v !== undefined, 'required'),
});

// `expect` is checked on its own so a mistake gets the message of the form it was written in
// (a zod union would only say that neither form matched).
const allowSchema = z.literal('allow', { error: 'expected allow or { deny: CODE }' });
const denySchema = z.strictObject({ deny: z.enum(REASON_CODES as unknown as [string, ...string[]]) });
type Expect = 'allow' | z.infer<typeof denySchema>;

const testFileSchema = z.strictObject({ tests: z.array(testSchema) });

/** The JSON Schema of a `*.test.yaml` file, with `expect` in both its forms (for editors and the reference). */
export function policyTestJsonSchema(): Record<string, unknown> {
  const documented = z.strictObject({
    tests: z
      .array(
        testSchema.extend({
          expect: z.union([allowSchema, denySchema]).describe('`allow` (every stage lets the request through), or `{ deny: CODE }` with the reason code the decision must carry.'),
        }),
      )
      .describe('The tests of this file, run in order.'),
  });
  const schema = z.toJSONSchema(documented, { target: 'draft-7', unrepresentable: 'any' }) as Record<string, unknown>;
  return { $id: 'https://portcullis.dev/schemas/policy-test.v1.json', title: 'Portcullis policy tests v1', ...schema };
}

export interface PolicyTest {
  readonly file: string;
  readonly line: number;
  readonly name: string;
  readonly request: SimRequest;
  /** "allow" or a reason code. */
  readonly expect: string;
}

export async function loadTestFile(name: string): Promise<{ tests: PolicyTest[]; errors: Diagnostic[] }> {
  const text = await readFile(name, 'utf8');
  const { file, errors: syntax } = parseYamlFile(text, name);
  if (syntax.length > 0) return { tests: [], errors: syntax };
  const expanded = yamlValue(file);
  if ('error' in expanded) return { tests: [], errors: [expanded.error] };
  const value: unknown = expanded.value ?? {};
  const parsed = testFileSchema.safeParse(value);
  const errors: Diagnostic[] = parsed.success ? [] : schemaDiagnostics(file, value, parsed.error.issues, testFileSchema);
  const raw = (value as { tests?: unknown }).tests;
  const expects: Expect[] = (Array.isArray(raw) ? raw : []).map((t: unknown, i) => {
    const given = typeof t === 'object' && t !== null ? (t as { expect?: unknown }).expect : undefined;
    if (given === undefined) return 'allow'; // reported as required by the file schema
    const schema = typeof given === 'object' && given !== null ? denySchema : allowSchema;
    const e = schema.safeParse(given);
    if (e.success) return e.data;
    const issues = e.error.issues.map((issue) => ({ ...issue, path: ['tests', i, 'expect', ...issue.path] }));
    errors.push(...schemaDiagnostics(file, value, issues, z.strictObject({ tests: z.array(z.strictObject({ expect: schema })) })));
    return 'allow';
  });
  if (!parsed.success || errors.length > 0) return { tests: [], errors: errors.sort((x, y) => x.line - y.line || x.column - y.column) };
  const tests = parsed.data.tests.map((t, i): PolicyTest => {
    const r = t.request;
    const identity =
      r.as !== undefined ? { as: r.as } : r.apiKey !== undefined ? { apiKey: r.apiKey } : r.jwt !== undefined ? { jwt: r.jwt } : r.clientCert !== undefined ? { clientCert: r.clientCert } : undefined;
    return {
      file: name,
      line: nodePosition(file, ['tests', i]).line,
      name: t.name,
      request: { method: r.method, path: r.path, host: r.host, ip: r.ip, headers: r.headers, identity },
      expect: expects[i] === 'allow' ? 'allow' : (expects[i] as { deny: string }).deny,
    };
  });
  return { tests, errors: [] };
}
