// Reads a policy file or directory into one validated document, keeping every node's position:
// YAML (with ranges) → env:/file: resolution → schema validation per file → merge. Every problem
// in every file is collected before anything is refused, so one `validate` run shows them all.
import { readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { PolicyError, type Diagnostic } from './diagnostics.js';
import { mergeDocuments } from './merge.js';
import { resolveReferences } from './resolve.js';
import { policySchema, type PolicyDocument } from './schema.js';
import { schemaDiagnostics } from './schema-errors.js';
import { SourceMap, type SourceFile } from './source-map.js';
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
  readonly env?: NodeJS.ProcessEnv;
  /** Hears the absolute path of every file a `file:` value names, also when the load fails. */
  readonly onFileReference?: (target: string) => void;
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

export async function loadPolicySource(path: string, options: LoadOptions = {}): Promise<LoadedPolicy> {
  const { files, isDirectory } = await policyFiles(path);
  const errors: Diagnostic[] = [];
  const sources: SourceFile[] = [];
  const docs: PolicyDocument[] = [];
  for (const name of files) {
    let text: string;
    try {
      text = await readFile(name, 'utf8');
    } catch (err) {
      errors.push(whole(name, `cannot read: ${(err as Error).message}`));
      continue;
    }
    const { file, errors: syntax } = parseYamlFile(text, name);
    if (syntax.length > 0) {
      errors.push(...syntax);
      continue;
    }
    const unresolved = resolveReferences(file, name, options.env, options.onFileReference);
    errors.push(...unresolved);
    const expanded = yamlValue(file);
    if ('error' in expanded) {
      errors.push(expanded.error);
      continue;
    }
    const value = expanded.value;
    if (value === null || value === undefined) {
      errors.push(whole(name, 'empty policy file (expected a mapping starting with version: 1)'));
      continue;
    }
    const parsed = policySchema.safeParse(value);
    if (!parsed.success) {
      // A value that could not be resolved is reported once, as such, not again as a bad value.
      const unresolvedPaths = new Set(unresolved.map((d) => d.path));
      errors.push(...schemaDiagnostics(file, value, parsed.error.issues, policySchema).filter((d) => !unresolvedPaths.has(d.path)));
    }
    if (unresolved.length > 0 || !parsed.success) continue;
    sources.push(file);
    docs.push(parsed.data);
  }
  if (errors.length > 0) throw new PolicyError(errors);

  const sourceMap = new SourceMap(sources);
  const { document, errors: mergeErrors } = mergeDocuments(docs, sourceMap);
  if (mergeErrors.length > 0) throw new PolicyError(mergeErrors);
  return { source: path, baseDir: isDirectory ? path : dirname(path), isDirectory, files, document, sourceMap };
}
