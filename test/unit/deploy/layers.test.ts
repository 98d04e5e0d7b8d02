// .dependency-cruiser.cjs is the layering of src/ written as rules; `npm run layers` in .ci/run fails
// when one breaks. Its layer lists are regular expressions that are easy to get subtly wrong, and a
// rule that matches nothing passes silently, so the rules are run against a miniature src/ in which
// every layer imports what it may and, in marked places, one thing it may not.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

const root = new URL('../../../', import.meta.url).pathname;
const fixture = join(root, 'test/fixtures/layers');
const depcruise = join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');

interface Violation {
  readonly rule: { readonly name: string };
  readonly from: string;
  readonly to: string;
  readonly cycle?: readonly { readonly name: string }[];
}

/** Runs depcruise on the miniature src/ with the project's config, as `npm run layers` does. */
function cruise(outputType: 'err' | 'json'): Promise<{ status: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [depcruise, 'src', '--config', join(root, '.dependency-cruiser.cjs'), '--output-type', outputType], { cwd: fixture });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (status) => (stderr === '' ? resolve({ status, stdout }) : reject(new Error(stderr))));
  });
}

describe('the layering rules (.dependency-cruiser.cjs)', () => {
  // The err reporter is what `npm run layers` prints and sets the exit status; json lists the edges.
  let status: number | null;
  let violations: Violation[];
  beforeAll(async () => {
    const [err, json] = await Promise.all([cruise('err'), cruise('json')]);
    status = err.status;
    violations = (JSON.parse(json.stdout) as { summary: { violations: Violation[] } }).summary.violations;
  }, 60_000);

  it('report exactly the forbidden edges of a miniature src/, and fail the run', () => {
    expect(status).not.toBe(0);
    const edges = violations.filter((v) => v.rule.name !== 'no-circular').map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(edges.sort()).toEqual(
      [
        'leaves-import-only-leaves: src/observability/log.ts → src/core/context.ts',
        'core-imports-only-core-and-leaves: src/core/context.ts → src/routing/route.ts',
        'policy-imports-only-policy-and-leaves: src/policy/plan.ts → src/core/context.ts',
        'policy-imports-only-policy-and-leaves: src/policy/plan.ts → src/authn/compile.ts',
        'stages-import-no-upper-layer: src/authz/stage.ts → src/engine/stages.ts',
        'stages-import-no-upper-layer: src/authz/stage.ts → src/admin/routes.ts',
        'engine-imports-no-door-or-above: src/engine/stages.ts → src/proxy/server.ts',
        'doors-import-no-composition: src/proxy/server.ts → src/admin/routes.ts',
        'only-main-imports-cli: src/admin/routes.ts → src/cli/keys.ts',
        'only-app-imports-admin: src/proxy/server.ts → src/admin/routes.ts',
        'only-app-imports-admin: src/authz/stage.ts → src/admin/routes.ts',
        'only-app-imports-admin: src/cli/serve.ts → src/admin/routes.ts',
        'no-unresolvable: src/cli/keys.ts → ./gone.js',
      ].sort(),
    );
  });

  it('report an import circle, type-only imports included', () => {
    const circles = violations.filter((v) => v.rule.name === 'no-circular');
    expect(circles.length).toBeGreaterThan(0);
    for (const c of circles) expect(new Set([c.from, ...(c.cycle ?? []).map((s) => s.name)])).toEqual(new Set(['src/policy/plan.ts', 'src/authn/compile.ts']));
  });
});
