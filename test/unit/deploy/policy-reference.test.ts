// docs/policy-reference.md says, for every key of the policy schema, what it means and what applies
// when it is absent. The keys are found here by walking the published JSON Schema, not by the
// generator, so a key the generator skipped fails too.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
// @ts-expect-error -- a plain .mjs script without type declarations
import { undocumented } from '../../../scripts/gen-policy-docs.mjs';
import { policyJsonSchema } from '../../../src/policy/schema.js';

const root = new URL('../../../', import.meta.url).pathname;

interface Node {
  type?: string;
  properties?: Record<string, Node>;
  required?: string[];
  additionalProperties?: Node | boolean;
  items?: Node;
  anyOf?: Node[];
}

/** Every key path as the reference writes it (`a.b`, `a.<name>.c`, `a[].b`), with whether it is required. */
function keys(node: Node, path: string, required: boolean, out: Map<string, boolean>): Map<string, boolean> {
  if (path !== '') out.set(path, required);
  const at = (k: string): string => (path === '' ? k : `${path}${k}`);
  // A union's variants (the audit sinks: one key per entry) each hold one optional key of the entry.
  const object = (n: Node, prefix: string, union = false): void => {
    const req = new Set(union ? [] : (n.required ?? []));
    for (const [k, v] of Object.entries(n.properties ?? {})) keys(v, at(`${prefix}${path === '' && prefix === '' ? '' : '.'}${k}`), req.has(k), out);
  };
  if (node.properties) object(node, '');
  else if (typeof node.additionalProperties === 'object' && node.additionalProperties.properties) object(node.additionalProperties, '.<name>');
  else if (node.items?.properties) object(node.items, '[]');
  else if (node.items?.anyOf) for (const variant of node.items.anyOf) object(variant, '[]', true);
  return out;
}

/** The reference's table rows: key → [type, default, notes]. */
function referenceRows(): Map<string, string[]> {
  const text = readFileSync(`${root}docs/policy-reference.md`, 'utf8');
  const rows = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^\| `([^`]+)` \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1]!, m[2]!.split(/(?<!\\) \| /));
  }
  return rows;
}

describe('the policy reference', () => {
  const schema = policyJsonSchema() as Node;
  const all = keys(schema, '', false, new Map());

  it('finds a good hundred keys in the schema (the walk itself works)', () => {
    expect(all.size).toBeGreaterThan(100);
    expect(all.get('audit.sinks[].file.fsync')).toBe(false);
    expect(all.get('routes[].match.path')).toBe(true);
    expect(all.has('upstreams.<name>.breaker.cooldown')).toBe(true);
  });

  it('gives every key of the schema a description and a default ("required", a value, or "none: …")', () => {
    const rows = referenceRows();
    const problems: string[] = [];
    for (const [path, required] of all) {
      const row = rows.get(path);
      if (row === undefined) {
        problems.push(`${path}: not in the reference`);
        continue;
      }
      const [, def, notes] = row;
      if (!notes?.trim()) problems.push(`${path}: no description`);
      if (required && def !== 'required') problems.push(`${path}: required, but the default column says "${def}"`);
      if (!required && (!def?.trim() || def === 'required')) problems.push(`${path}: optional, but no default is stated`);
    }
    expect(problems).toEqual([]);
  });

  it('is refused by its generator while a key lacks a description or a default', () => {
    const json = policyJsonSchema() as { properties: Record<string, unknown> };
    expect(undocumented(json)).toEqual([]);
    const extra = { ...json, properties: { ...json.properties, shiny: { type: 'object', properties: { knob: { type: 'integer' } } } } };
    expect(undocumented(extra)).toEqual(['shiny: no description', 'shiny: no default', 'shiny.knob: no description', 'shiny.knob: no default']);
  });

  it('states the breaker defaults the code applies, and that an upstream without breaker: has none', async () => {
    const { BREAKER_DEFAULTS } = await import('../../../src/upstream/breaker.js');
    const rows = referenceRows();
    expect(rows.get('upstreams.<name>.breaker')![1]).toBe('none: no circuit breaker');
    expect(rows.get('upstreams.<name>.breaker.minRequests')![1]).toBe(`\`${BREAKER_DEFAULTS.minRequests}\``);
    expect(rows.get('upstreams.<name>.breaker.window')![1]).toBe(`\`${BREAKER_DEFAULTS.windowMs / 1000}s\``);
    expect(rows.get('upstreams.<name>.breaker.cooldown')![1]).toBe(`\`${BREAKER_DEFAULTS.cooldownMs / 1000}s\``);
    expect(rows.get('upstreams.<name>.breaker.halfOpenProbes')![1]).toBe(`\`${BREAKER_DEFAULTS.halfOpenProbes}\``);
    expect(rows.get('upstreams.<name>.breaker.failOn')![1]).toBe(`\`[${BREAKER_DEFAULTS.failOn.join(', ')}]\``);
    expect(rows.get('upstreams.<name>.breaker.consecutiveFailures')![1]).toContain(`\`${BREAKER_DEFAULTS.consecutiveFailures}\``);
  });
});
