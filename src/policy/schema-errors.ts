// Zod issues → diagnostics at the YAML position they are about: an unknown key points at the key
// (with did-you-mean from the keys allowed at that level), a wrong value points at the value.
import { z } from 'zod';
import type { Diagnostic } from './diagnostics.js';
import { diagnosticAt, type KeyPath, nodePosition, type SourceFile } from './source-map.js';
import { didYouMean } from './suggest.js';

type Issue = z.core.$ZodIssue;

export function schemaDiagnostics(file: SourceFile, value: unknown, issues: readonly Issue[], schema: z.ZodType): Diagnostic[] {
  const out: Diagnostic[] = [];
  const at = (path: KeyPath, message: string, key = false): void => {
    const pos = nodePosition(file, path, key);
    out.push(diagnosticAt(pos, path, message));
  };
  for (const issue of issues) {
    const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
    if (issue.code === 'unrecognized_keys') {
      const allowed = allowedKeys(schemaAt(schema, path));
      for (const key of issue.keys) at([...path, key], `unknown key${didYouMean(key, allowed)}`, true);
      continue;
    }
    at(path, describe(issue, path, valueAt(value, path)));
  }
  return out;
}

function describe(issue: Issue, path: KeyPath, actual: unknown): string {
  const strip = (m: string): string => m.replace(/^(Invalid input|Too small|Too big|Invalid option): /, '');
  switch (issue.code) {
    case 'invalid_type':
      if (actual === undefined) return 'required';
      return `expected ${yamlType(issue.expected)}, got ${kindOf(actual)}`;
    case 'invalid_value': {
      if (path.length === 1 && path[0] === 'version') return `unsupported version ${JSON.stringify(actual)} (expected 1)`;
      const options = issue.values.map((v) => String(v));
      const hint = typeof actual === 'string' ? didYouMean(actual, options) : '';
      return `${JSON.stringify(actual)} is not one of ${options.join(', ')}${hint}`;
    }
    case 'too_small':
      if (issue.origin === 'array' && Number(issue.minimum) === 1) return 'must not be empty';
      return strip(issue.message);
    case 'invalid_union': {
      // `host: 5` fails every branch on its type: name all the types it could have been.
      const types = issue.errors.map((branch) => branch[0]).filter((i) => i?.code === 'invalid_type' && i.path.length === 0);
      if (types.length === issue.errors.length && types.length > 0 && actual !== undefined) {
        return `expected ${types.map((i) => yamlType((i as { expected: string }).expected)).join(' or ')}, got ${kindOf(actual)}`;
      }
      const first = issue.errors[0]?.[0];
      return first ? strip(first.message) : strip(issue.message);
    }
    default:
      return strip(issue.message);
  }
}

/** Zod's type names in the words of YAML. */
function yamlType(expected: string): string {
  const words: Record<string, string> = { object: 'a mapping', record: 'a mapping', array: 'a list', string: 'a string', number: 'a number', int: 'an integer', boolean: 'true or false' };
  return words[expected] ?? expected;
}

function kindOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  // A diagnostic is one line: a long value (a pasted certificate, a whole file) is cut short.
  const shown = JSON.stringify(v);
  return `${typeof v} ${shown.length > 60 && typeof v === 'string' ? `${shown.slice(0, 56)}…"` : shown}`;
}

function valueAt(root: unknown, path: KeyPath): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** The schema that validates the value at `path` (unions: every branch). */
function schemaAt(schema: z.ZodType, path: KeyPath): z.ZodType[] {
  let current: z.ZodType[] = [schema];
  for (const step of path) {
    const next: z.ZodType[] = [];
    for (const s of current.flatMap(unwrap)) {
      if (s instanceof z.ZodObject && typeof step === 'string') {
        const field = (s.shape as Record<string, z.ZodType>)[step];
        if (field) next.push(field);
      } else if (s instanceof z.ZodArray && typeof step === 'number') next.push(s.element as z.ZodType);
      else if (s instanceof z.ZodRecord) next.push(s.valueType as z.ZodType);
    }
    current = next;
  }
  return current.flatMap(unwrap);
}

function unwrap(s: z.ZodType): z.ZodType[] {
  if (s instanceof z.ZodOptional || s instanceof z.ZodNullable || s instanceof z.ZodDefault) return unwrap(s.unwrap() as z.ZodType);
  if (s instanceof z.ZodUnion) return (s.options as z.ZodType[]).flatMap(unwrap);
  return [s];
}

function allowedKeys(schemas: z.ZodType[]): string[] {
  return schemas.flatMap((s) => (s instanceof z.ZodObject ? Object.keys(s.shape as object) : []));
}
