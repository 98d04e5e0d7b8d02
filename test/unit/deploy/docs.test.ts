// docs/: the policy reference is generated from the schema and must not go stale; links between
// documents and to the repository must resolve.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { policyJsonSchema } from '../../../src/policy/schema.js';
import { MAX_ALIASES, MAX_EXPANDED_NODES } from '../../../src/policy/yaml.js';

const root = new URL('../../../', import.meta.url).pathname;

describe('docs/', () => {
  it('has policy and policy-test references generated from the current schemas (run `node scripts/gen-policy-docs.mjs` when this fails)', () => {
    const r = spawnSync(process.execPath, ['scripts/gen-policy-docs.mjs', '--check'], { cwd: root, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('documents every key of the schema', () => {
    const reference = readFileSync(`${root}docs/policy-reference.md`, 'utf8');
    const schema = policyJsonSchema() as { properties: Record<string, { properties?: Record<string, unknown> }> };
    for (const [key, value] of Object.entries(schema.properties)) {
      expect(reference).toContain(`| \`${key}`);
      for (const sub of Object.keys(value.properties ?? {})) expect(reference).toContain(`\`${key}.${sub}\``);
    }
  });

  it('shows the default policy in the README as it is shipped, whole', () => {
    const readme = readFileSync(`${root}README.md`, 'utf8');
    const policy = readme.slice(readme.indexOf('## Policy'));
    const shown = policy.slice(policy.indexOf('```yaml\n') + 8, policy.indexOf('```\n', policy.indexOf('```yaml\n') + 8));
    expect(shown).toBe(readFileSync(`${root}policies/gateway.yaml`, 'utf8'));
  });

  it('states the YAML alias bounds the loader enforces, in the reference and the security model', () => {
    for (const doc of ['policy-reference.md', 'security.md']) {
      const text = readFileSync(`${root}docs/${doc}`, 'utf8').replace(/\s+/g, ' ');
      expect(text, doc).toContain(`${MAX_ALIASES.toLocaleString('en-US')} alias`);
      expect(text, doc).toContain(`${MAX_EXPANDED_NODES.toLocaleString('en-US')} values`);
    }
  });

  it('names every metric Portcullis exports in the README and the operations guide', async () => {
    const { registry } = await import('../../../src/observability/metrics.js');
    const ours = (await registry.getMetricsAsJSON()).map((m) => m.name).filter((n) => n.startsWith('portcullis_'));
    expect(ours.length).toBeGreaterThan(20);
    for (const doc of ['README.md', 'docs/operations.md']) {
      const text = readFileSync(`${root}${doc}`, 'utf8');
      expect(
        ours.filter((n) => !text.includes(n)),
        doc,
      ).toEqual([]);
    }
  });

  it('links only to files that exist', () => {
    const docs = readdirSync(`${root}docs`).filter((f) => f.endsWith('.md'));
    expect(docs.sort()).toEqual([
      'architecture.md',
      'cli.md',
      'conditions.md',
      'decisions.md',
      'deployment.md',
      'http2-grpc.md',
      'metering.md',
      'operations.md',
      'policy-reference.md',
      'policy-tests.md',
      'security.md',
    ]);
    for (const doc of docs) {
      const text = readFileSync(join(root, 'docs', doc), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)#\s]+)(?:#[^)]*)?\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        expect(existsSync(join(root, 'docs', dirname(doc), target!)), `${doc} → ${target}`).toBe(true);
      }
    }
  });
});
