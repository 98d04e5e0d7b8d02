// `portcullis test PATH [--coverage] [--json]`: policy unit tests. Every request is decided by the
// real compiled Plan and the real stages (route → ipRules → authenticate → authorize); limits,
// breaker and forwarding are not run (see src/simulate/simulate.ts).
import { readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Plan } from '../core/plan.js';
import { buildPlan } from '../engine/validate.js';
import { type Diagnostic, formatDiagnostic, PolicyError } from '../policy/diagnostics.js';
import { simulationPlaceholder } from '../policy/placeholders.js';
import { type SimResult, SimulationError, simulate } from '../simulate/simulate.js';
import { loadTestFile, type PolicyTest } from '../simulate/test-file.js';
import { type CliIo, EXIT, parseFlags, UsageError } from './command.js';

export const usage = `Usage: portcullis test PATH [--coverage] [--json] [--allow-empty]

Runs the policy tests (*.test.yaml) against the policy, through the real pipeline stages
(route, IP rules, authentication, authorization; limits, breaker and forwarding are skipped).
  PATH  a policy directory (its *.test.yaml), a policy file (the *.test.yaml beside it),
        or one *.test.yaml file (run against the policy in its directory)

An env: value the tests never use (upstream and store URLs, audit sinks and keys, the forwarded
identity key) may be unset: a placeholder stands in and a warning names it. Values the decisions
use (JWT secrets and keys, API key hashes, roles) must be set: unset, the policy is refused.

Prints one line per failing test followed by its decision trace, and last "N passed, M failed".
  exit 0  every test passed;  exit 1  a test failed, no test was found, or the policy/test files
  are invalid

Options:
  --coverage  also list routes and roles that no test exercised
  --json      print the results as JSON
  --allow-empty  finding no test is a pass (by default it fails: a CI job must not go green having
              tested nothing)
  -h, --help
`;

const TEST_SUFFIX = '.test.yaml';

async function locate(path: string): Promise<{ policy: string; tests: string[] }> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch {
    // The policy loader says "policy not found" at PATH:1:1, exit 1, as validate does.
    return { policy: path, tests: [] };
  }
  const inDir = async (dir: string): Promise<string[]> =>
    (await readdir(dir))
      .filter((f) => f.endsWith(TEST_SUFFIX))
      .sort()
      .map((f) => join(dir, f));
  if (info.isDirectory()) return { policy: path, tests: await inDir(path) };
  if (basename(path).endsWith(TEST_SUFFIX)) return { policy: dirname(path), tests: [path] };
  return { policy: path, tests: await inDir(dirname(path)) };
}

interface Outcome {
  readonly test: PolicyTest;
  readonly passed: boolean;
  readonly actual: string;
  readonly result: SimResult | undefined;
  readonly error: string | undefined;
}

function describeActual(r: SimResult): string {
  const missing = r.deny?.extra?.missing;
  return r.decision === 'allow' ? 'allow' : missing !== undefined ? `${r.decision} (missing ${String(missing)})` : r.decision;
}

async function runOne(plan: Plan, test: PolicyTest): Promise<Outcome> {
  try {
    const result = await simulate(plan, test.request);
    return { test, passed: result.decision === test.expect, actual: describeActual(result), result, error: undefined };
  } catch (err) {
    if (!(err instanceof SimulationError)) throw err;
    return { test, passed: false, actual: 'error', result: undefined, error: err.message };
  }
}

function coverage(plan: Plan, outcomes: readonly Outcome[]): { routes: string[]; roles: string[] } {
  const routes = new Set<string>();
  const roles = new Set<string>();
  for (const o of outcomes) {
    if (o.result?.route !== undefined) routes.add(o.result.route);
    for (const r of o.result?.roles ?? []) roles.add(r);
  }
  return {
    routes: plan.routes.map((r) => r.name).filter((n) => !routes.has(n)),
    roles: [...(plan.rbac?.roles.keys() ?? [])].filter((n) => !roles.has(n)),
  };
}

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { coverage: { type: 'boolean' }, json: { type: 'boolean' }, 'allow-empty': { type: 'boolean' } });
  if (positionals.length !== 1) throw new UsageError(positionals.length === 0 ? 'PATH is required' : `unexpected argument "${positionals[1]}"`);
  const { policy, tests: files } = await locate(positionals[0]!);

  let plan: Plan;
  try {
    const built = await buildPlan(policy, { env: io.env, unsetEnv: simulationPlaceholder });
    plan = built.plan;
    for (const d of built.placeholders) io.stderr(`${formatDiagnostic(d)}\n`);
  } catch (err) {
    if (!(err instanceof PolicyError)) throw err;
    for (const d of err.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
    io.stderr(`${policy}: invalid policy\n`);
    return EXIT.failed;
  }

  const tests: PolicyTest[] = [];
  const errors: Diagnostic[] = [];
  for (const f of files) {
    const loaded = await loadTestFile(f);
    tests.push(...loaded.tests);
    errors.push(...loaded.errors);
  }
  if (errors.length > 0) {
    for (const d of errors) io.stderr(`${formatDiagnostic(d)}\n`);
    io.stderr(`invalid test file${errors.length === 1 ? '' : 's'}\n`);
    return EXIT.failed;
  }
  if (tests.length === 0) {
    io.stderr(`${policy}: no tests found (${files.length === 0 ? `no *${TEST_SUFFIX} files` : 'the test files hold no tests'})\n`);
    if (!values['allow-empty']) {
      io.stderr('a run that tests nothing fails; pass --allow-empty to accept it\n');
      if (values.json) io.stdout(`${JSON.stringify({ passed: 0, failed: 0, tests: [] }, null, 2)}\n`);
      else io.stdout('0 passed, 0 failed\n');
      return EXIT.failed;
    }
  }

  const outcomes: Outcome[] = [];
  for (const t of tests) outcomes.push(await runOne(plan, t));
  const passed = outcomes.filter((o) => o.passed).length;
  const failed = outcomes.length - passed;
  const cov = values.coverage ? coverage(plan, outcomes) : undefined;

  if (values.json) {
    const out = {
      passed,
      failed,
      tests: outcomes.map((o) => ({
        file: o.test.file,
        line: o.test.line,
        name: o.test.name,
        passed: o.passed,
        expected: o.test.expect,
        actual: o.result?.decision ?? 'error',
        ...(o.error !== undefined ? { error: o.error } : {}),
        ...(o.passed ? {} : { trace: o.result?.trace ?? [] }),
      })),
      ...(cov !== undefined ? { coverage: { uncoveredRoutes: cov.routes, uncoveredRoles: cov.roles } } : {}),
    };
    io.stdout(`${JSON.stringify(out, null, 2)}\n`);
    return failed === 0 ? EXIT.ok : EXIT.failed;
  }

  for (const o of outcomes) {
    if (o.passed) continue;
    io.stdout(`FAIL ${o.test.file}:${o.test.line} ${o.test.name}: expected ${o.test.expect}, got ${o.error !== undefined ? `error: ${o.error}` : o.actual}\n`);
    for (const step of o.result?.trace ?? []) io.stdout(`    ${step.stage}: ${step.message}\n`);
  }
  if (cov !== undefined) {
    io.stdout(`coverage: routes no test exercised: ${cov.routes.length === 0 ? 'none' : cov.routes.join(', ')}\n`);
    io.stdout(`coverage: roles no test exercised: ${cov.roles.length === 0 ? 'none' : cov.roles.join(', ')}\n`);
  }
  io.stdout(`${passed} passed, ${failed} failed\n`);
  return failed === 0 ? EXIT.ok : EXIT.failed;
}
