// `env:NAME` and `file:path` values, resolved in the YAML tree before validation so the schema
// (and everything after it) sees final values. Permission lists are left alone: `file:read` there
// is a permission, not a file reference.
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { isMap, isPair, isScalar, isSeq } from 'yaml';
import type { Diagnostic } from './diagnostics.js';
import { formatPath, type KeyPath, nodePosition, type SourceFile } from './source-map.js';

const LITERAL_KEYS = new Set(['require', 'permissions', 'inherits', '$schema']);
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A diagnostic about one value, with the key path of that value. */
export type ValueDiagnostic = Diagnostic & { readonly keyPath: KeyPath };

/**
 * Replaces env:/file: scalars in place; returns one error per value that cannot be resolved.
 * `onFile` hears every file a `file:` value names, found or not (the policy watch follows them).
 * `standIn` may give a value for an unset variable: it is used, with a warning instead of an error.
 */
export function resolveReferences(
  file: SourceFile,
  filePath: string,
  env: NodeJS.ProcessEnv = process.env,
  onFile?: (target: string) => void,
  standIn?: (path: KeyPath, name: string) => string | undefined,
): ValueDiagnostic[] {
  const errors: ValueDiagnostic[] = [];
  const report = (severity: Diagnostic['severity'], path: KeyPath, message: string): void => {
    const pos = nodePosition(file, path);
    errors.push({ severity, file: pos.file, line: pos.line, column: pos.column, path: formatPath(path), message, keyPath: path });
  };
  const fail = (path: KeyPath, message: string): void => report('error', path, message);
  const walk = (node: unknown, path: KeyPath, literal: boolean): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair) || !isScalar(pair.key)) continue;
        const key = String(pair.key.value);
        walk(pair.value, [...path, key], literal || LITERAL_KEYS.has(key));
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => {
        walk(item, [...path, i], literal);
      });
    } else if (isScalar(node) && typeof node.value === 'string' && !literal) {
      const value = node.value;
      if (value.startsWith('env:')) {
        const name = value.slice(4);
        if (!ENV_NAME.test(name)) return fail(path, `"${value}": expected env:NAME with a variable name`);
        const found = env[name];
        if (found === undefined) {
          const placeholder = standIn?.(path, name);
          if (placeholder === undefined) return fail(path, `environment variable ${name} is not set`);
          report('warning', path, `environment variable ${name} is not set: a placeholder stands in (this command does not use the value)`);
          node.value = placeholder;
          return;
        }
        node.value = found;
      } else if (value.startsWith('file:')) {
        const rel = value.slice(5);
        const target = resolve(dirname(filePath), rel);
        onFile?.(target);
        try {
          // A trailing newline is how editors end files, never part of a secret.
          node.value = readFileSync(target, 'utf8').replace(/\r?\n$/, '');
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          return fail(path, code === 'ENOENT' ? `file not found: ${rel} (resolved to ${target})` : `cannot read ${rel}: ${(err as Error).message}`);
        }
      }
    }
  };
  walk(file.doc.contents, [], false);
  return errors;
}
