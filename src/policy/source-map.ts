// Maps a key path in the merged policy back to the file, line and column it was written at.
// Each file keeps its parsed YAML document (with node ranges) and a LineCounter; merging records
// which file (and which path in it) every merged node came from.
import { type Document, isMap, isPair, isScalar, isSeq, type LineCounter, type Node } from 'yaml';
import type { Diagnostic } from './diagnostics.js';

export interface SourcePosition {
  readonly file: string;
  readonly line: number;
  readonly column: number;
}

export type KeyPath = readonly (string | number)[];

export interface SourceFile {
  /** The file name as shown in diagnostics (as the user wrote the policy path). */
  readonly name: string;
  readonly doc: Document.Parsed;
  readonly lines: LineCounter;
  /**
   * A path of the document as validated → the path where it was written, when the two differ (list
   * items the schema refused were left out of the validated document, so later items moved up).
   */
  readonly translate?: (path: KeyPath) => KeyPath;
}

interface Origin {
  readonly file: number;
  readonly path: KeyPath;
}

/** `routes[2].match.path` */
export function formatPath(path: KeyPath): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? p : `.${p}`;
  return out;
}

/** A diagnostic about the value (or key) at `path`, which the source map places at `pos`. */
export function diagnosticAt(pos: SourcePosition, path: KeyPath, message: string, severity: Diagnostic['severity'] = 'error'): Diagnostic {
  return { severity, file: pos.file, line: pos.line, column: pos.column, path: formatPath(path), message };
}

const keyOf = (path: KeyPath): string => path.join('\u0000');

export class SourceMap {
  readonly files: readonly SourceFile[];
  readonly #origins = new Map<string, Origin>();

  constructor(files: readonly SourceFile[]) {
    this.files = files;
    if (files.length > 0) this.record([], 0, []);
  }

  /** The merged node at `merged` came from `local` in file number `file`. */
  record(merged: KeyPath, file: number, local: KeyPath): void {
    this.#origins.set(keyOf(merged), { file, path: local });
  }

  /**
   * The key path to show for `path`: as merged, except that in a one-file policy whose refused list
   * items were left out, the later items keep the index they were written at.
   */
  shownPath(path: KeyPath): KeyPath {
    const only = this.files.length === 1 ? this.files[0] : undefined;
    return only?.translate === undefined ? path : only.translate(path);
  }

  /** Where the value at `path` (merged document) was written; the nearest existing ancestor when absent. */
  position(path: KeyPath): SourcePosition {
    return this.#locate(path, false);
  }

  /** Where the key of `path` was written (for unknown-key errors); falls back to the value. */
  keyPosition(path: KeyPath): SourcePosition {
    return this.#locate(path, true);
  }

  #locate(path: KeyPath, wantKey: boolean): SourcePosition {
    for (let k = path.length; k >= 0; k--) {
      const origin = this.#origins.get(keyOf(path.slice(0, k)));
      if (origin === undefined) continue;
      const file = this.files[origin.file]!;
      return nodePosition(file, [...origin.path, ...path.slice(k)], wantKey);
    }
    const first = this.files[0];
    return { file: first?.name ?? '', line: 1, column: 1 };
  }
}

/** Position of a path inside one file's YAML document. */
export function nodePosition(file: SourceFile, validated: KeyPath, wantKey = false): SourcePosition {
  const path = file.translate === undefined ? validated : file.translate(validated);
  let node: unknown = file.doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (let i = 0; i < path.length; i++) {
    const step = path[i]!;
    let next: unknown;
    let keyOffset: number | undefined;
    if (isMap(node)) {
      const pair = node.items.find((it) => isPair(it) && isScalar(it.key) && String(it.key.value) === String(step));
      if (pair) {
        keyOffset = rangeStart(pair.key);
        next = pair.value;
      }
    } else if (isSeq(node) && typeof step === 'number') {
      next = node.items[step];
    }
    if (next === undefined && keyOffset === undefined) break;
    offset = (wantKey && i === path.length - 1 && keyOffset !== undefined ? keyOffset : rangeStart(next)) ?? keyOffset ?? offset;
    node = next;
  }
  const { line, col } = file.lines.linePos(offset);
  return { file: file.name, line, column: col };
}

function rangeStart(node: unknown): number | undefined {
  return node !== null && typeof node === 'object' && 'range' in node ? (node as Node).range?.[0] : undefined;
}
