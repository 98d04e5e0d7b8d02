// What a section compiler gets besides the document: a place to report errors and warnings at
// the position they are about, and where relative references resolve from.
import type { Diagnostic } from './diagnostics.js';
import type { LoadedPolicy } from './load.js';
import { diagnosticAt, type KeyPath, type SourcePosition } from './source-map.js';

export class CompileContext {
  readonly baseDir: string;
  readonly files: readonly string[];
  readonly #loaded: LoadedPolicy;
  readonly #diagnostics: Diagnostic[] = [];

  constructor(loaded: LoadedPolicy) {
    this.#loaded = loaded;
    this.baseDir = loaded.baseDir;
    this.files = loaded.files;
  }

  /** A problem that refuses the policy. `path` is a key path in the merged document. */
  error(path: KeyPath, message: string): void {
    this.#add('error', path, message, false);
  }

  /** Like error, but pointing at the key itself rather than its value (unknown or unsupported keys). */
  errorAtKey(path: KeyPath, message: string): void {
    this.#add('error', path, message, true);
  }

  warn(path: KeyPath, message: string): void {
    this.#add('warning', path, message, false);
  }

  position(path: KeyPath): SourcePosition {
    return this.#loaded.sourceMap.position(path);
  }

  /** `file:line:col` of a path, for messages that point at a second place. */
  where(path: KeyPath): string {
    const p = this.position(path);
    return `${p.file}:${p.line}:${p.column}`;
  }

  get hasErrors(): boolean {
    return this.#diagnostics.some((d) => d.severity === 'error');
  }

  get diagnostics(): readonly Diagnostic[] {
    return this.#diagnostics;
  }

  get warnings(): Diagnostic[] {
    return this.#diagnostics.filter((d) => d.severity === 'warning');
  }

  #add(severity: Diagnostic['severity'], path: KeyPath, message: string, key: boolean): void {
    const map = this.#loaded.sourceMap;
    const pos = key ? map.keyPosition(path) : map.position(path);
    this.#diagnostics.push(diagnosticAt(pos, map.shownPath(path), message, severity));
  }
}
