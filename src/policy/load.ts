// Reads a policy file or directory into one validated document, keeping every node's position:
// YAML (with ranges) → env:/file: resolution → schema validation per file → merge. Every problem
// in every file is collected before anything is refused, so one `validate` run shows them all;
// what passed is still merged (loadPolicyPartially), so the semantic checks run in the same pass.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { isMap, isPair, isScalar, isSeq, type Node } from 'yaml';
import { type Diagnostic, PolicyError } from './diagnostics.js';
import { mergeDocuments } from './merge.js';
import { resolveReferences } from './resolve.js';
import { entryOf, salvage } from './salvage.js';
import { type PolicyDocument, policySchema } from './schema.js';
import { schemaDiagnostics } from './schema-errors.js';
import { type KeyPath, type SourceFile, SourceMap } from './source-map.js';
import { parseYamlFile, yamlValue } from './yaml.js';

export interface LoadedPolicy {
  /** The policy path as given (file or directory). */
  readonly source: string;
  /** Directory relative references are resolved against (the file's directory, or the directory). */
  readonly baseDir: string;
  readonly isDirectory: boolean;
  /** Policy files in merge order, as shown in diagnostics. */
  readonly files: readonly string[];
  /** The merged, resolved, validated document. */
  readonly document: PolicyDocument;
  readonly sourceMap: SourceMap;
}

export interface LoadOptions {
  /** Where env: values come from (default process.env). */
  readonly env?: NodeJS.ProcessEnv | undefined;
  /** Hears the absolute path of every file a `file:` value names, also when the load fails. */
  readonly onFileReference?: ((target: string) => void) | undefined;
  /**
   * A stand-in for an env: value whose variable is unset, by where the value is (undefined: the
   * unset variable is an error). For commands that never use some values, such as `test`.
   */
  readonly unsetEnv?: ((path: KeyPath, name: string) => string | undefined) | undefined;
}

/** Policy tests live beside the policy, named *.test.yaml; they are not policy. */
export function isPolicyFileName(name: string): boolean {
  return /\.ya?ml$/i.test(name) && !/\.test\.ya?ml$/i.test(name);
}

const whole = (file: string, message: string): Diagnostic => ({ severity: 'error', file, line: 1, column: 1, path: '', message });

/** The files a policy path stands for (sorted; directories are not searched recursively). */
export async function policyFiles(path: string): Promise<{ files: string[]; isDirectory: boolean }> {
  let isDirectory: boolean;
  try {
    isDirectory = (await stat(path)).isDirectory();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new PolicyError([whole(path, code === 'ENOENT' ? 'policy not found' : `cannot read policy: ${(err as Error).message}`)]);
  }
  if (!isDirectory) return { files: [path], isDirectory };
  const names = (await readdir(path)).filter(isPolicyFileName).sort();
  if (names.length === 0) throw new PolicyError([whole(path, 'no policy files (*.yaml, *.yml) in this directory')]);
  return { files: names.map((n) => join(path, n)), isDirectory };
}

/** A policy as far as it loaded, with every error found on the way. */
export interface PartialLoad {
  /** Every file's accepted parts, merged; undefined when a file could not be read or parsed at all. */
  readonly loaded: LoadedPolicy | undefined;
  /** YAML, env:/file:, schema and merge errors. */
  readonly errors: readonly Diagnostic[];
  /** Warnings of the load itself: placeholders that stand in for unset variables. */
  readonly notes: readonly Diagnostic[];
  /** Whether a diagnostic lies in a part of the policy that lost something to an error above. */
  readonly inLeftOutPart: (d: Diagnostic) => boolean;
}

interface Span {
  readonly file: string;
  readonly from: readonly [number, number];
  readonly to: readonly [number, number];
}

/** Where the node at `path` of one file was written, key included: [line, col] from and to. */
function spanOf(file: SourceFile, path: KeyPath): Span | undefined {
  let node: unknown = file.doc.contents;
  let start: number | undefined = (node as Node | null)?.range?.[0];
  for (const step of path) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(step));
      if (pair === undefined) return undefined;
      start = (pair.key as Node).range?.[0];
      next = pair.value;
    } else if (isSeq(node) && typeof step === 'number') {
      next = node.items[step];
      start = (next as Node | undefined)?.range?.[0];
    }
    if (next === undefined || next === null) return undefined;
    node = next;
  }
  const end = (node as Node).range?.[1];
  if (start === undefined || end === undefined) return undefined;
  const a = file.lines.linePos(start);
  const b = file.lines.linePos(end);
  return { file: file.name, from: [a.line, a.col], to: [b.line, b.col] };
}

const within = (d: Diagnostic, s: Span): boolean =>
  d.file === s.file && (d.line > s.from[0] || (d.line === s.from[0] && d.column >= s.from[1])) && (d.line < s.to[0] || (d.line === s.to[0] && d.column <= s.to[1]));

/** The whole policy, or PolicyError with every load error (no semantic checks: see validate.ts). */
export async function loadPolicySource(path: string, options: LoadOptions = {}): Promise<LoadedPolicy> {
  const { loaded, errors } = await loadPolicyPartially(path, options);
  if (errors.length > 0 || loaded === undefined) throw new PolicyError(errors);
  return loaded;
}

/**
 * Loads what it can: a file's schema errors and unresolved values are reported and those parts
 * left out, so the rest can still be merged and compiled and its errors reported in the same run.
 * Throws PolicyError only when the policy path itself cannot be read.
 */
export async function loadPolicyPartially(path: string, options: LoadOptions = {}): Promise<PartialLoad> {
  const { files, isDirectory } = await policyFiles(path);
  const errors: Diagnostic[] = [];
  const notes: Diagnostic[] = [];
  const sources: SourceFile[] = [];
  const docs: PolicyDocument[] = [];
  const spans: Span[] = [];
  let complete = true;
  for (const name of files) {
    let text: string;
    try {
      text = await readFile(name, 'utf8');
    } catch (err) {
      errors.push(whole(name, `cannot read: ${(err as Error).message}`));
      complete = false;
      continue;
    }
    const { file, errors: syntax } = parseYamlFile(text, name);
    if (syntax.length > 0) {
      errors.push(...syntax);
      complete = false;
      continue;
    }
    const resolved = resolveReferences(file, name, options.env, options.onFileReference, options.unsetEnv);
    const unresolved = resolved.filter((d) => d.severity === 'error');
    errors.push(...unresolved);
    notes.push(...resolved.filter((d) => d.severity === 'warning'));
    const expanded = yamlValue(file);
    if ('error' in expanded) {
      errors.push(expanded.error);
      complete = false;
      continue;
    }
    const value = expanded.value;
    if (value === null || value === undefined) {
      errors.push(whole(name, 'empty policy file (expected a mapping starting with version: 1)'));
      complete = false;
      continue;
    }
    const parsed = policySchema.safeParse(value);
    if (!parsed.success) {
      // A value that could not be resolved is reported once, as such, not again as a bad value.
      const unresolvedPaths = new Set(unresolved.map((d) => d.path));
      errors.push(...schemaDiagnostics(file, value, parsed.error.issues, policySchema).filter((d) => !unresolvedPaths.has(d.path)));
    }
    if (unresolved.length === 0 && parsed.success) {
      sources.push(file);
      docs.push(parsed.data);
      continue;
    }
    const kept = salvage(
      value,
      policySchema,
      unresolved.map((d) => d.keyPath),
      { version: 1 },
    );
    if (kept === undefined) {
      complete = false;
      continue;
    }
    for (const p of kept.removed) {
      const span = spanOf(file, entryOf(p));
      if (span !== undefined) spans.push(span);
    }
    sources.push(kept.translate === undefined ? file : { ...file, translate: kept.translate });
    docs.push(kept.data);
  }
  const inLeftOutPart = (d: Diagnostic): boolean => spans.some((s) => within(d, s));
  if (!complete) return { loaded: undefined, errors, notes, inLeftOutPart };

  const sourceMap = new SourceMap(sources);
  const { document, errors: mergeErrors } = mergeDocuments(docs, sourceMap);
  errors.push(...mergeErrors);
  const loaded = { source: path, baseDir: isDirectory ? path : dirname(path), isDirectory, files, document, sourceMap };
  return { loaded, errors, notes, inLeftOutPart };
}
