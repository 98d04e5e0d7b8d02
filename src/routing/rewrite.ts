// `routes[].rewrite` → one function per route from the forwarded (canonical, re-encoded) path and
// the captured params to the path the upstream gets. Every piece a policy writes is checked at load
// to be whole segments of unreserved characters and no dot segments, and a param is one canonical
// segment (never "." or "..", never an encoded "/"), re-encoded: no rewrite can produce a path that
// resolves elsewhere upstream.
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { encodePath } from './canonical.js';
import type { CompiledPattern } from './pattern.js';
import type { CompiledRoute } from './route.js';

declare module '../core/plan.js' {
  interface Plan {
    /** Path rewrites by route index; undefined: the route forwards the public path. */
    readonly rewrites: readonly (Rewrite | undefined)[];
  }
}

/** The upstream path for the forwarded path and the captured params. */
export type Rewrite = (forwardPath: string, params: Readonly<Record<string, string>>) => string;

const SEGMENTS = /^(\/[A-Za-z0-9._~-]+)+$/;
const SEGMENT = /^[A-Za-z0-9._~-]+$/;
const PARAM = /^\{([A-Za-z_][A-Za-z0-9_]*)\}$/;
const isDot = (s: string): boolean => s === '.' || s === '..';

/** Why a prefix is unusable, or undefined. */
function checkPrefix(prefix: string): string | undefined {
  if (!SEGMENTS.test(prefix)) return `"${prefix}" is not a path prefix: write whole segments of letters, digits, "-", ".", "_", "~" starting with "/" and without a trailing "/"`;
  if (prefix.split('/').some(isDot)) return `"${prefix}" has a "." or ".." segment`;
  return undefined;
}

export function compileRewrites(doc: PolicyDocument, cx: CompileContext, routes: readonly CompiledRoute[]): (Rewrite | undefined)[] {
  const out: (Rewrite | undefined)[] = [];
  for (const route of routes) {
    const spec = doc.routes?.[route.index]?.rewrite;
    if (spec === undefined) continue;
    const at = ['routes', route.index, 'rewrite'];
    const pattern = doc.routes![route.index]!.match.path;
    if (spec.path !== undefined) {
      if (spec.stripPrefix !== undefined || spec.addPrefix !== undefined) {
        cx.error([...at, 'path'], 'path replaces the whole path: it cannot be combined with stripPrefix or addPrefix');
        continue;
      }
      const r = templateRewrite(spec.path, (route.matcher as CompiledPattern).params);
      if (typeof r === 'string') cx.error([...at, 'path'], r);
      else out[route.index] = r;
      continue;
    }
    const strip = spec.stripPrefix;
    const add = spec.addPrefix;
    if (strip === undefined && add === undefined) {
      cx.error(at, 'a rewrite needs stripPrefix, addPrefix or path');
      continue;
    }
    let ok = true;
    for (const [key, value] of [
      ['stripPrefix', strip],
      ['addPrefix', add],
    ] as const) {
      const problem = value === undefined ? undefined : checkPrefix(value);
      if (problem !== undefined) {
        cx.error([...at, key], problem);
        ok = false;
      }
    }
    if (ok && strip !== undefined && pattern !== strip && !pattern.startsWith(`${strip}/`)) {
      cx.error([...at, 'stripPrefix'], `the route's path pattern ${pattern} does not start with ${strip}: some requests it matches would not have the prefix`);
      ok = false;
    }
    if (ok) out[route.index] = prefixRewrite(strip, add);
  }
  return out;
}

function prefixRewrite(strip: string | undefined, add: string | undefined): Rewrite {
  const cut = strip?.length ?? 0;
  if (add === undefined) return (p) => (p.length === cut ? '/' : p.slice(cut));
  return (p) => (p.length === cut ? add : add + p.slice(cut));
}

function templateRewrite(template: string, captured: readonly string[]): Rewrite | string {
  if (!template.startsWith('/')) return 'a rewrite path starts with "/"';
  // Literal pieces, with the param names between them: literal[0] param[0] literal[1] … literal[n].
  const literals: string[] = [''];
  const names: string[] = [];
  const segments = template.slice(1).split('/');
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i]!;
    literals[literals.length - 1] += '/';
    const m = PARAM.exec(s);
    if (m !== null) {
      if (!captured.includes(m[1]!)) return `the route's path pattern captures no {${m[1]}}${captured.length > 0 ? ` (it captures ${captured.map((c) => `{${c}}`).join(', ')})` : ''}`;
      names.push(m[1]!);
      literals.push('');
    } else if (s === '' && i === segments.length - 1) {
      // a trailing "/" is kept as written
    } else if (!SEGMENT.test(s) || isDot(s)) {
      return `invalid segment "${s}": a rewrite path is literal segments (letters, digits, "-", ".", "_", "~"; no "." or "..") and {param}s`;
    } else literals[literals.length - 1] += s;
  }
  if (names.length === 0) {
    const fixed = literals[0]!;
    return () => fixed;
  }
  return (_p, params) => {
    let out = literals[0]!;
    for (let k = 0; k < names.length; k++) out += encodePath(params[names[k]!] ?? '') + literals[k + 1]!;
    return out;
  };
}
