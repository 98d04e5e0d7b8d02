// YAML text → document with positions → plain value, the same way for policy files and policy test
// files. Aliases (`*std`, `<<: *base`) are welcome, within two bounds checked before the library
// expands anything, each refused at the alias that crosses it with file:line:column:
//   - MAX_ALIASES alias uses per file: the library resolves each alias by scanning every anchor
//     and alias before it, so its cost grows with the square of this number;
//   - MAX_EXPANDED_NODES values per file once every alias is expanded: validation and hashing walk
//     the expanded tree, and a few nested aliases ("billion laughs") could otherwise make it
//     astronomically large from a few hundred bytes.
// A recursive alias (an anchor used inside its own node) is refused too: it has no finite value.
import { type Alias, isAlias, isCollection, isNode, isPair, LineCounter, parseDocument } from 'yaml';
import type { Diagnostic } from './diagnostics.js';
import type { SourceFile } from './source-map.js';

export const MAX_ALIASES = 10_000;
export const MAX_EXPANDED_NODES = 500_000;

/** Parses one file; `errors` holds the syntax errors (then the document must not be used). */
export function parseYamlFile(text: string, name: string): { file: SourceFile; errors: Diagnostic[] } {
  const lines = new LineCounter();
  // A NUL or a byte sequence that is not UTF-8 (decoded as U+FFFD) means this is no text file:
  // say so at the first such byte rather than echo kilobytes of it back as a YAML value.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: a NUL is how a binary file shows itself
  const binary = text.search(/[\u0000\uFFFD]/);
  if (binary !== -1) {
    const empty = parseDocument('', { lineCounter: lines });
    let line = 1;
    let lineStart = 0;
    for (let i = text.indexOf('\n'); i !== -1 && i < binary; i = text.indexOf('\n', i + 1)) {
      line++;
      lineStart = i + 1;
    }
    const message = 'not a YAML text file: it holds a NUL byte or bytes that are not UTF-8';
    return { file: { name, doc: empty, lines }, errors: [{ severity: 'error', file: name, line, column: binary - lineStart + 1, path: '', message }] };
  }
  // merge: `<<: *base` is the usual way to share a block of settings between routes.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true, merge: true });
  const errors = doc.errors.map((e): Diagnostic => {
    const pos = e.linePos?.[0] ?? lines.linePos(e.pos[0]);
    const message =
      e.code === 'MULTIPLE_DOCS'
        ? "a file holds one YAML document, and a second one starts here: remove the '---' line or split the file in two"
        : `YAML: ${(e.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '')}`;
    return { severity: 'error', file: name, line: pos.line, column: pos.col, path: '', message };
  });
  return { file: { name, doc, lines }, errors };
}

/** The file's value with aliases expanded, or the diagnostic that refuses it. */
export function yamlValue(file: SourceFile): { value: unknown } | { error: Diagnostic } {
  const refused = checkAliases(file);
  if (refused) return { error: refused };
  // Bounded above; the library's own guard (maxAliasCount, default 100) would refuse ordinary policies.
  return { value: file.doc.toJS({ maxAliasCount: -1 }) };
}

function checkAliases(file: SourceFile): Diagnostic | undefined {
  const anchors = new Map<string, unknown>();
  /** Expanded size of each anchored node whose walk has finished. */
  const sizes = new Map<unknown, number>();
  let aliases = 0;
  let expanded = 0;
  let refused: { alias: Alias; message: string } | undefined;

  const walk = (node: unknown): number => {
    if (refused !== undefined) return 0;
    if (isAlias(node)) {
      const target = anchors.get(node.source);
      if (target === undefined) return 1; // the parser already reports an unknown anchor
      const size = sizes.get(target);
      if (size === undefined) {
        refused = { alias: node, message: `alias *${node.source} is used inside the node it names; a recursive value cannot be loaded` };
        return 0;
      }
      aliases += 1;
      expanded += size;
      if (aliases > MAX_ALIASES) {
        refused = { alias: node, message: `more than ${MAX_ALIASES} alias uses in one file (the most a file may have)` };
      } else if (expanded > MAX_EXPANDED_NODES) {
        refused = { alias: node, message: `with this alias the file expands to more than ${MAX_EXPANDED_NODES} values (the most a file may expand to)` };
      }
      return size;
    }
    let size = 1;
    expanded += 1;
    const anchor = isNode(node) ? node.anchor : undefined;
    // Registered before the children, as the YAML spec orders it: an alias inside is recursive.
    if (anchor) anchors.set(anchor, node);
    if (isCollection(node)) {
      for (const item of node.items) size += isPair(item) ? walk(item.key) + walk(item.value) : walk(item);
    } else if (isPair(node)) {
      size += walk(node.key) + walk(node.value);
    }
    if (anchor) sizes.set(node, size);
    return size;
  };
  walk(file.doc.contents);
  if (refused === undefined) return undefined;
  const { line, col } = file.lines.linePos(refused.alias.range?.[0] ?? 0);
  return { severity: 'error', file: file.name, line, column: col, path: '', message: `YAML: ${refused.message}` };
}
