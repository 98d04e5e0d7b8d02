// docs/architecture.md is the page a newcomer reads before changing anything, so it must not point
// at files, scripts, layers or a stage order that no longer exist. What it names is read from the
// text here and checked against the repository, .dependency-cruiser.cjs and the engine's stage list.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { Engine } from '../../../src/engine/engine.js';
import { MemoryStore } from '../../../src/limits/memory-store.js';

const root = new URL('../../../', import.meta.url).pathname;
const doc = readFileSync(`${root}docs/architecture.md`, 'utf8');

/** The part of the doc under a `## heading`, up to the next one. */
function section(heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  expect(start, `docs/architecture.md has a "## ${heading}" section`).toBeGreaterThanOrEqual(0);
  const end = doc.indexOf('\n## ', start + 1);
  return doc.slice(start, end === -1 ? undefined : end);
}

/** Every repository path the doc names (`src/…`, `test/…`, `docs/…` and the other top-level folders), trailing punctuation cut. */
function pathsNamed(): string[] {
  const found = [...doc.matchAll(/(?<![\w./-])(?:src|test|docs|scripts|policies|schemas|\.ci)\/[\w./<>-]*/g)].map((m) => m[0].replace(/\.+$/, ''));
  return [...new Set(found)];
}

/** A path as far as it is literal: `src/<folder>/<x>.stage.ts` must at least have `src/`. */
function literalPart(path: string): string {
  const at = path.indexOf('<');
  return at === -1 ? path : path.slice(0, path.lastIndexOf('/', at) + 1);
}

/** The folders and root files of src/ that the layer rules name, read from the rules' path patterns. */
function layeredNames(): Set<string> {
  const config = createRequire(import.meta.url)(`${root}.dependency-cruiser.cjs`) as {
    forbidden: { from: Record<string, unknown>; to: Record<string, unknown> }[];
  };
  const patterns = new Set<string>();
  const add = (v: unknown): void => {
    if (typeof v === 'string') patterns.add(v);
    else if (Array.isArray(v)) for (const p of v) add(p);
  };
  for (const rule of config.forbidden) for (const side of [rule.from, rule.to]) for (const key of ['path', 'pathNot']) add(side[key]);
  const names = new Set<string>();
  for (const p of patterns) {
    if (p === '^src/') continue;
    const m = /^\^src\/(?:\(([\w|-]+)\)|([\w-]+))(\/|\[\.\]ts\$)$/.exec(p);
    if (m === null) throw new Error(`a layer pattern this test cannot read: ${p} (teach layeredNames its shape)`);
    for (const name of (m[1] ?? m[2]!).split('|')) names.add(m[3] === '/' ? `${name}/` : `${name}.ts`);
  }
  return names;
}

describe('docs/architecture.md', () => {
  it('names only files and folders that exist', () => {
    const paths = pathsNamed();
    expect(paths.length).toBeGreaterThan(40);
    expect(paths).toContain('src/engine/engine.ts');
    expect(paths.filter((p) => !existsSync(`${root}${literalPart(p)}`))).toEqual([]);
  });

  it('names only npm scripts that package.json defines', () => {
    const scripts = (JSON.parse(readFileSync(`${root}package.json`, 'utf8')) as { scripts: Record<string, string> }).scripts;
    const named = [...new Set([...doc.matchAll(/npm run ([\w:-]+)/g)].map((m) => m[1]!))];
    expect(named).toEqual(expect.arrayContaining(['layers', 'dead', 'lint', 'schema']));
    expect(named.filter((s) => !Object.hasOwn(scripts, s))).toEqual([]);
  });

  it('lists in its layer table exactly the folders and files the layering rules name', () => {
    const table = section('The layering rule')
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| layer') && !l.startsWith('| ---'));
    expect(table.length).toBeGreaterThanOrEqual(8);
    const listed = new Set(table.flatMap((row) => [...row.split(' | ')[1]!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!)));
    expect([...listed].sort()).toEqual([...layeredNames()].sort());
  });

  it('draws the stages in the order the engine runs them, the policy scope first', () => {
    const diagram = doc.slice(doc.indexOf('Engine.decide(ctx)'), doc.indexOf('CONTINUE, or a Deny'));
    const [policyPart, fullPart] = diagram.replace('Engine.decide(ctx)', '').split("(scope 'policy')");
    const names = (text: string): string[] =>
      text
        .split('→')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    const parts = { store: { store: new MemoryStore() } };
    expect(names(policyPart!)).toEqual(Engine.create(parts, 'policy').stageNames);
    expect([...names(policyPart!), ...names(fullPart!.split("(scope 'full' only)")[0]!)]).toEqual(Engine.create(parts, 'full').stageNames);
  });

  it('stays one page', () => {
    expect(doc.split('\n').length).toBeLessThanOrEqual(250);
  });
});
