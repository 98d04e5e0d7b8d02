// `cors:` (top level, merged field by field with each route's own) → one CorsRule per route,
// compiled once: the origin matcher (exact names in a Set, `https://*.example.com` as a prefix and
// a suffix around one label, no regex), and every header value a preflight or an answer carries,
// joined here so that nothing is built per request but the echoed origin.
import type { CompileContext } from '../policy/compile-context.js';
import type { CorsSpec, PolicyDocument } from '../policy/schema.js';
import { parseDuration } from '../policy/values.js';
import type { CompiledRoute } from './route.js';

declare module '../core/plan.js' {
  interface Plan {
    /** CORS rules by route index; undefined when no route has one (the CORS stages then do nothing). */
    readonly cors: CorsPlan | undefined;
  }
}

export interface CorsPlan {
  /** By route index; undefined: that route has no CORS rule (preflights reach its upstream as sent). */
  readonly routes: readonly (CorsRule | undefined)[];
}

/** Request headers a browser may send cross-origin without asking (Fetch, CORS-safelisted); content-type is not among them here, since a JSON body needs a preflight. */
const SAFELISTED = new Set(['accept', 'accept-language', 'content-language']);
const DEFAULT_METHODS = ['GET', 'HEAD', 'POST'];
const VARY_ORIGIN: readonly string[] = Object.freeze(['vary', 'Origin']);
const NONE: readonly string[] = Object.freeze([]);

interface Wildcard {
  /** "https://" */
  readonly prefix: string;
  /** ".example.com" or ".example.com:8443" */
  readonly suffix: string;
}

export class CorsRule {
  readonly #any: boolean;
  readonly #exact: ReadonlySet<string>;
  readonly #wildcards: readonly Wildcard[];
  readonly #credentials: boolean;
  /** Methods a preflight may ask for. */
  readonly methods: ReadonlySet<string>;
  readonly #headers: ReadonlySet<string>;
  /** The headers after Access-Control-Allow-Origin, for a preflight (flat [name, value, …]). */
  readonly #preflightTail: readonly string[];
  /** The headers after Access-Control-Allow-Origin, for any other answer. */
  readonly #answerTail: readonly string[];
  /** The whole header list for an answer when the origin is not echoed ("*"). */
  readonly #anyAnswer: readonly string[] | undefined;
  readonly #anyPreflight: readonly string[] | undefined;

  constructor(spec: CorsSpec & { readonly origins: readonly string[] }, routeMethods: ReadonlySet<string> | undefined) {
    const origins = spec.origins.map((o) => o.toLowerCase());
    this.#any = origins.includes('*');
    this.#exact = new Set(origins.filter((o) => !o.includes('*')));
    this.#wildcards = origins.filter((o) => o.includes('*.')).map((o) => ({ prefix: o.slice(0, o.indexOf('*')), suffix: o.slice(o.indexOf('*') + 1) }));
    this.#credentials = spec.credentials === true;
    const methods = spec.methods ?? (routeMethods !== undefined ? [...routeMethods] : DEFAULT_METHODS);
    this.methods = new Set(routeMethods === undefined ? methods : methods.filter((m) => routeMethods.has(m)));
    this.#headers = new Set((spec.headers ?? []).map((h) => h.toLowerCase()));
    const common: string[] = [];
    if (this.#credentials) common.push('access-control-allow-credentials', 'true');
    // The answer depends on the Origin unless every origin gets "*".
    const echo = !this.#any || this.#credentials;
    if (echo) common.push(...VARY_ORIGIN);
    const preflight = ['access-control-allow-methods', [...this.methods].join(', ')];
    if (spec.headers !== undefined && spec.headers.length > 0) preflight.push('access-control-allow-headers', spec.headers.join(', '));
    if (spec.maxAge !== undefined) preflight.push('access-control-max-age', String(Math.floor(parseDuration(spec.maxAge) / 1000)));
    const answer = spec.exposeHeaders !== undefined && spec.exposeHeaders.length > 0 ? ['access-control-expose-headers', spec.exposeHeaders.join(', ')] : [];
    this.#preflightTail = Object.freeze([...preflight, ...common]);
    this.#answerTail = Object.freeze([...answer, ...common]);
    this.#anyAnswer = echo ? undefined : Object.freeze(['access-control-allow-origin', '*', ...this.#answerTail]);
    this.#anyPreflight = echo ? undefined : Object.freeze(['access-control-allow-origin', '*', ...this.#preflightTail]);
    Object.freeze(this);
  }

  allowsOrigin(origin: string): boolean {
    if (this.#any) return true;
    const o = origin.toLowerCase();
    if (this.#exact.has(o)) return true;
    for (const w of this.#wildcards) {
      if (o.length <= w.prefix.length + w.suffix.length || !o.startsWith(w.prefix) || !o.endsWith(w.suffix)) continue;
      if (isLabel(o, w.prefix.length, o.length - w.suffix.length)) return true;
    }
    return false;
  }

  /** Whether every header a preflight lists (Access-Control-Request-Headers) may be sent. */
  allowsHeaders(requested: string | undefined): boolean {
    if (requested === undefined) return true;
    for (const token of requested.split(',')) {
      const h = token.trim().toLowerCase();
      if (h !== '' && !this.#headers.has(h) && !SAFELISTED.has(h)) return false;
    }
    return true;
  }

  /** The headers of a preflight answer for an allowed origin. */
  preflight(origin: string): readonly string[] {
    return this.#anyPreflight ?? ['access-control-allow-origin', origin, ...this.#preflightTail];
  }

  /** The headers any other answer carries: for an allowed origin the CORS headers, else only Vary when the answer depends on the origin. */
  answer(origin: string | undefined): readonly string[] {
    if (origin === undefined || !this.allowsOrigin(origin)) return this.#any && !this.#credentials ? NONE : VARY_ORIGIN;
    return this.#anyAnswer ?? ['access-control-allow-origin', origin, ...this.#answerTail];
  }

  /** What a refused preflight carries: caches must not reuse it for another origin. */
  get refusal(): readonly string[] {
    return VARY_ORIGIN;
  }
}

/** Whether o[from, to) is one DNS label (letters, digits, "-"), as a one-label wildcard accepts. */
function isLabel(o: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = o.charCodeAt(i);
    if (!((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45)) return false;
  }
  return true;
}

const ORIGIN = /^(https?):\/\/(\*\.)?([a-z0-9-]+(\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(:\d{1,5})?$/;

/** Why an `origins` entry is not usable, or undefined. */
function checkOrigin(origin: string): string | undefined {
  if (origin === '*') return undefined;
  const m = ORIGIN.exec(origin.toLowerCase());
  if (m === null) return `"${origin}" is not an origin: write scheme://host[:port] without a path (e.g. https://app.example.com), https://*.example.com or "*"`;
  if (m[2] !== undefined && m[4] === undefined) return `"${origin}" matches every subdomain of a top-level domain: the wildcard needs at least two labels after it`;
  return undefined;
}

export function compileCors(doc: PolicyDocument, cx: CompileContext, routes: readonly CompiledRoute[]): CorsPlan | undefined {
  const top = doc.cors;
  if (top === undefined && !(doc.routes ?? []).some((r) => r.cors !== undefined)) return undefined;
  const check = (spec: CorsSpec, at: (string | number)[]): boolean => {
    let ok = true;
    (spec.origins ?? []).forEach((o, i) => {
      const problem = checkOrigin(o);
      if (problem !== undefined) {
        cx.error([...at, 'origins', i], problem);
        ok = false;
      }
    });
    return ok;
  };
  const topOk = top === undefined || check(top, ['cors']);
  const byIndex: (CorsRule | undefined)[] = [];
  for (const route of routes) {
    const own = doc.routes?.[route.index]?.cors;
    if (own === undefined && top === undefined) continue;
    const at = ['routes', route.index, 'cors'];
    if ((own !== undefined && !check(own, at)) || !topOk) continue;
    const spec = { ...top, ...own };
    const origins = spec.origins;
    if (origins === undefined) {
      cx.error(at, 'no origins: set cors.origins here or at the top level');
      continue;
    }
    if (spec.credentials === true && origins.includes('*')) {
      // Point at whichever of the two was written on this route, else at the top level's.
      const onRoute = own?.credentials !== undefined ? [...at, 'credentials'] : own?.origins !== undefined ? [...at, 'origins'] : ['cors', 'credentials'];
      cx.error(onRoute, 'credentials: true cannot be combined with origins ["*"]: browsers refuse it; list the origins');
      continue;
    }
    const rule = new CorsRule({ ...spec, origins }, route.methods);
    if (rule.methods.size === 0) {
      cx.error([...at, 'methods'], "none of these methods is one of the route's methods");
      continue;
    }
    byIndex[route.index] = rule;
  }
  return { routes: byIndex };
}
