// Path patterns: literal segments, `{name}` (one segment, captured), `*` (one segment) and `**`
// (the rest: zero or more segments, last only). A pattern is parsed once into a matcher that
// walks the path with indexOf/startsWith: no regex, and no allocation unless it matches and captures.
import type { PathMatcher } from './route.js';

type Segment = { readonly kind: 'literal'; readonly text: string } | { readonly kind: 'param'; readonly name: string } | { readonly kind: 'star' };

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});
const PARAM_NAME = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;

interface Parsed {
  readonly segments: readonly Segment[];
  /** The pattern ends in `**`. */
  readonly rest: boolean;
}

function parse(pattern: string): Parsed | string {
  if (!pattern.startsWith('/')) return 'a path pattern starts with "/"';
  const raw = pattern.slice(1).split('/');
  const segments: Segment[] = [];
  const names = new Set<string>();
  let rest = false;
  for (let i = 0; i < raw.length; i++) {
    const s = raw[i]!;
    if (s === '**') {
      if (i !== raw.length - 1) return '"**" may only be the last segment';
      rest = true;
    } else if (s === '*') {
      segments.push({ kind: 'star' });
    } else if (s.startsWith('{') || s.endsWith('}')) {
      const m = PARAM_NAME.exec(s);
      if (!m) return `invalid parameter segment "${s}" (expected {name}: letters, digits, "_")`;
      if (names.has(m[1]!)) return `parameter "${m[1]}" appears twice`;
      names.add(m[1]!);
      segments.push({ kind: 'param', name: m[1]! });
    } else if (/[{}*]/.test(s)) {
      return `invalid segment "${s}": a segment is a literal, {name}, * or ** (never a mix)`;
    } else {
      segments.push({ kind: 'literal', text: s });
    }
  }
  return { segments, rest };
}

/** Why a pattern is invalid, or undefined when it is fine. */
export function checkPattern(pattern: string): string | undefined {
  const p = parse(pattern);
  return typeof p === 'string' ? p : undefined;
}

export class CompiledPattern implements PathMatcher {
  readonly pattern: string;
  /** Captured parameter names, in order. */
  readonly params: readonly string[];
  /** First segment when it is a literal (router index key), else undefined. */
  readonly firstLiteral: string | undefined;
  readonly match: (path: string) => Readonly<Record<string, string>> | undefined;
  readonly #parsed: Parsed;

  constructor(pattern: string) {
    const parsed = parse(pattern);
    if (typeof parsed === 'string') throw new Error(`invalid path pattern ${JSON.stringify(pattern)}: ${parsed}`);
    this.pattern = pattern;
    this.#parsed = parsed;
    this.params = parsed.segments.flatMap((s) => (s.kind === 'param' ? [s.name] : []));
    const first = parsed.segments[0];
    this.firstLiteral = first?.kind === 'literal' ? first.text : undefined;
    this.match = buildMatcher(pattern, parsed);
    Object.freeze(this);
  }

  /** Whether every path this pattern's matches is also matched by `earlier` (shadow detection). */
  coveredBy(earlier: CompiledPattern): boolean {
    return covers(earlier.#parsed, this.#parsed);
  }
}

export function compilePattern(pattern: string): CompiledPattern {
  return new CompiledPattern(pattern);
}

function buildMatcher(pattern: string, { segments, rest }: Parsed): CompiledPattern['match'] {
  const allLiteral = segments.every((s) => s.kind === 'literal');
  if (allLiteral && !rest) return (path) => (path === pattern ? NO_PARAMS : undefined);
  if (allLiteral) {
    // `/a/b/**`: the prefix itself (zero segments) or anything below it.
    const prefix = pattern.slice(0, -3); // "/a/b" ("" for "/**")
    const below = `${prefix}/`;
    return (path) => (path === prefix || path.startsWith(below) ? NO_PARAMS : undefined);
  }
  const n = segments.length;
  const kinds = new Uint8Array(n); // 0 literal, 1 param, 2 star
  const texts: string[] = new Array<string>(n).fill('');
  const names: string[] = [];
  segments.forEach((s, i) => {
    kinds[i] = s.kind === 'literal' ? 0 : s.kind === 'param' ? 1 : 2;
    if (s.kind === 'literal') texts[i] = s.text;
    if (s.kind === 'param') names.push(s.name);
  });
  // Capture offsets live in one buffer per matcher: matching is synchronous, so it is never shared.
  const spans = new Int32Array(names.length * 2);
  return (path) => {
    if (path.charCodeAt(0) !== 47 /* / */) return undefined;
    const len = path.length;
    let pos = 1;
    let done = false;
    let captured = 0;
    for (let i = 0; i < n; i++) {
      if (done) return undefined;
      let end = path.indexOf('/', pos);
      if (end === -1) {
        end = len;
        done = true;
      }
      const kind = kinds[i];
      if (kind === 0) {
        const text = texts[i]!;
        if (end - pos !== text.length || !path.startsWith(text, pos)) return undefined;
      } else {
        if (end === pos) return undefined; // `{name}` and `*` need a non-empty segment
        if (kind === 1) {
          spans[captured++] = pos;
          spans[captured++] = end;
        }
      }
      pos = end + 1;
    }
    if (!done && !rest) return undefined;
    if (names.length === 0) return NO_PARAMS;
    const params: Record<string, string> = {};
    for (let k = 0; k < names.length; k++) params[names[k]!] = path.slice(spans[2 * k]!, spans[2 * k + 1]!);
    return params;
  };
}

/** Structural containment: does `a` match every path `b` matches? Exact for these four segment kinds. */
function covers(a: Parsed, b: Parsed): boolean {
  for (let i = 0; ; i++) {
    const sa = a.segments[i];
    const sb = b.segments[i];
    if (sa === undefined) {
      if (a.rest) return true;
      return sb === undefined && !b.rest;
    }
    if (sb === undefined) return false; // b may end (or match zero rest) where a still needs a segment
    if (sa.kind === 'literal' && (sb.kind !== 'literal' || sb.text !== sa.text)) return false;
    if (sa.kind !== 'literal' && sb.kind === 'literal' && sb.text === '') return false;
  }
}
