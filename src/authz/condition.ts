// Route conditions: `when: "<CEL expression>"` over the caller and the request. Each expression is
// parsed, checked (cel-check.ts) and planned once per policy load; a request only evaluates the
// plan against bindings that read the context lazily: a variable, field or header the expression
// never touches is never built.
import { type CelEnv, type CelInput, type CelMap, celEnv, celMap, isCelError, parse, plan } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { DEFAULT_API_KEY_HEADER } from '../authn/api-key.js';
import { FORWARD_DEFAULTS } from '../authn/forward.js';
import { DEFAULT_IDENTITY_JWT_HEADER } from '../authn/identity-jwt.js';
import type { RequestContext } from '../core/context.js';
import type { Principal } from '../core/principal.js';
import type { Route } from '../core/route.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { checkCondition } from './cel-check.js';

declare module '../core/plan.js' {
  interface Plan {
    /** Route `when` conditions by route index; undefined when no route has one. */
    readonly conditions: ConditionPlan | undefined;
  }
}

interface RouteCondition {
  readonly route: string;
  /** The expression as written (explain prints it). */
  readonly source: string;
  /** The planned expression: true, false, another value (a non-bool result) or a CelError. */
  readonly evaluate: (bindings: ConditionBindings) => unknown;
}

export interface ConditionPlan {
  readonly routes: ReadonlyMap<number, RouteCondition>;
  /** Lower-case header names a condition never sees (credentials, identity headers). */
  readonly hidden: ReadonlySet<string>;
}

/** One environment for every policy: the standard library plus the string extensions. */
const ENV: CelEnv = celEnv({ funcs: strings });

/** Headers that carry or assert identity: a condition may not read them (nor log them by mistake). */
function hiddenHeaders(doc: PolicyDocument): Set<string> {
  const a = doc.authentication;
  const f = a?.forward;
  const names = [
    'authorization',
    'proxy-authorization',
    'cookie',
    'x-portcullis-test-principal',
    a?.apiKeys?.header ?? DEFAULT_API_KEY_HEADER,
    f?.subject ?? FORWARD_DEFAULTS.subject,
    f?.tenant ?? FORWARD_DEFAULTS.tenant,
    f?.roles ?? FORWARD_DEFAULTS.roles,
    f?.keyId ?? FORWARD_DEFAULTS.keyId,
    f?.issuer ?? FORWARD_DEFAULTS.issuer,
    f?.jwt?.header ?? DEFAULT_IDENTITY_JWT_HEADER,
    ...Object.values(FORWARD_DEFAULTS),
    DEFAULT_IDENTITY_JWT_HEADER,
  ];
  return new Set(names.map((n) => n.toLowerCase()));
}

/** "line 2, column 5" of a 0-based offset in a (possibly multi-line) expression. */
function placeIn(source: string, offset: number): string {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return line === 1 ? `column ${column}` : `line ${line}, column ${column}`;
}

export function compileConditions(doc: PolicyDocument, cx: CompileContext, routes: readonly Route[]): ConditionPlan | undefined {
  const hidden = hiddenHeaders(doc);
  const out = new Map<number, RouteCondition>();
  for (const route of routes) {
    const spec = doc.routes?.[route.index];
    const source = spec?.when;
    if (source === undefined) continue;
    const at = ['routes', route.index, 'when'];
    if (spec?.shadow === true) {
      cx.error(at, 'a shadow route cannot have a condition: shadow mode would not cover it');
      continue;
    }
    let parsed: ReturnType<typeof parse>;
    try {
      parsed = parse(source);
    } catch (err) {
      const e = err as { rawMessage?: unknown; location?: { start?: { offset?: number } } };
      const offset = e.location?.start?.offset;
      const why = typeof e.rawMessage === 'string' ? e.rawMessage : (err as Error).message;
      cx.error(at, `the condition does not parse: ${why}${offset === undefined ? '' : ` (at ${placeIn(source, offset)} of the expression)`}`);
      continue;
    }
    const problem = checkCondition(parsed, ENV, hidden, !route.public);
    if (problem !== undefined) {
      cx.error(at, `${problem.message}${problem.offset === undefined ? '' : ` (at ${placeIn(source, problem.offset)} of the expression)`}`);
      continue;
    }
    let planned: (bindings: ConditionBindings) => unknown;
    try {
      const run = plan(ENV, parsed);
      planned = (b) => run(b as unknown as Record<string, CelInput>);
    } catch (err) {
      cx.error(at, `the condition cannot be compiled: ${(err as Error).message}`);
      continue;
    }
    out.set(route.index, { route: route.name, source, evaluate: planned });
  }
  return out.size === 0 ? undefined : { routes: out, hidden };
}

/** What an evaluation came to: the boolean, or why there is none. */
export function outcomeOf(value: unknown): boolean | string {
  if (value === true || value === false) return value;
  if (isCelError(value) || value instanceof Error) return `evaluation failed: ${value.message}`;
  return `the result is not true or false (${typeof value === 'bigint' ? 'an int' : typeof value === 'string' ? 'a string' : 'a non-bool value'})`;
}

// --- Request-time bindings. Read-only map views over what the context already holds. ---

/** A map view whose entries come from a lookup; iteration only for the (rare) macros over maps. */
abstract class View implements ReadonlyMap<string, CelInput> {
  abstract get(key: string): CelInput | undefined;
  abstract keys(): MapIterator<string>;
  has(key: string): boolean {
    return this.get(key) !== undefined;
  }
  get size(): number {
    let n = 0;
    for (const _ of this.keys()) n++;
    return n;
  }
  *entries(): MapIterator<[string, CelInput]> {
    for (const k of this.keys()) yield [k, this.get(k)!];
  }
  *values(): MapIterator<CelInput> {
    for (const k of this.keys()) yield this.get(k)!;
  }
  forEach(fn: (value: CelInput, key: string, map: ReadonlyMap<string, CelInput>) => void): void {
    for (const k of this.keys()) fn(this.get(k)!, k, this);
  }
  [Symbol.iterator](): MapIterator<[string, CelInput]> {
    return this.entries();
  }
}

const PRINCIPAL_FIELDS = ['subject', 'tenant', 'roles', 'claims'] as const;
const REQUEST_FIELDS = ['method', 'path', 'params', 'headers'] as const;
const NO_CLAIMS: Readonly<Record<string, unknown>> = Object.freeze({});

class RecordView extends View {
  readonly #record: Readonly<Record<string, unknown>>;
  constructor(record: Readonly<Record<string, unknown>>) {
    super();
    this.#record = record;
  }
  get(key: string): CelInput | undefined {
    return Object.hasOwn(this.#record, key) ? (this.#record[key] as CelInput) : undefined;
  }
  keys(): MapIterator<string> {
    return Object.keys(this.#record)[Symbol.iterator]() as MapIterator<string>;
  }
}

class PrincipalView extends View {
  readonly #p: Principal;
  constructor(p: Principal) {
    super();
    this.#p = p;
  }
  get(key: string): CelInput | undefined {
    const p = this.#p;
    switch (key) {
      case 'subject':
        return p.subject;
      case 'tenant':
        return p.tenant;
      case 'roles':
        return p.roles;
      case 'claims':
        return celMap(new RecordView(p.claims ?? NO_CLAIMS));
      default:
        return undefined;
    }
  }
  keys(): MapIterator<string> {
    return PRINCIPAL_FIELDS.filter((f) => this.get(f) !== undefined)[Symbol.iterator]() as MapIterator<string>;
  }
}

/** Request headers by lower-case name, repeated ones joined with ", "; hidden names are absent. */
class HeadersView extends View {
  readonly #raw: readonly string[];
  readonly #hidden: ReadonlySet<string>;
  constructor(raw: readonly string[], hidden: ReadonlySet<string>) {
    super();
    this.#raw = raw;
    this.#hidden = hidden;
  }
  get(key: string): CelInput | undefined {
    if (this.#hidden.has(key)) return undefined;
    const raw = this.#raw;
    let out: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === key.length && name.toLowerCase() === key) out = out === undefined ? raw[i + 1]! : `${out}, ${raw[i + 1]}`;
    }
    return out;
  }
  keys(): MapIterator<string> {
    const names = new Set<string>();
    for (let i = 0; i < this.#raw.length; i += 2) {
      const n = this.#raw[i]!.toLowerCase();
      if (!this.#hidden.has(n)) names.add(n);
    }
    return names.values();
  }
}

class RequestView extends View {
  readonly #ctx: RequestContext;
  readonly #hidden: ReadonlySet<string>;
  constructor(ctx: RequestContext, hidden: ReadonlySet<string>) {
    super();
    this.#ctx = ctx;
    this.#hidden = hidden;
  }
  get(key: string): CelInput | undefined {
    const ctx = this.#ctx;
    switch (key) {
      case 'method':
        // What routing and authorization saw: an honoured method override counts.
        return ctx.methodOverride ?? ctx.method;
      case 'path':
        return ctx.path;
      case 'params':
        return celMap(new RecordView(ctx.params ?? NO_CLAIMS));
      case 'headers':
        return celMap(new HeadersView(ctx.rawHeaders, this.#hidden));
      default:
        return undefined;
    }
  }
  keys(): MapIterator<string> {
    return REQUEST_FIELDS[Symbol.iterator]() as MapIterator<string>;
  }
}

/** The variables of one evaluation, built on first read (the evaluator reads them by property). */
export class ConditionBindings {
  readonly #ctx: RequestContext;
  readonly #hidden: ReadonlySet<string>;
  constructor(ctx: RequestContext, hidden: ReadonlySet<string>) {
    this.#ctx = ctx;
    this.#hidden = hidden;
  }
  get principal(): CelMap | undefined {
    const p = this.#ctx.principal;
    return p === undefined ? undefined : celMap(new PrincipalView(p));
  }
  get request(): CelMap {
    return celMap(new RequestView(this.#ctx, this.#hidden));
  }
  get time(): CelInput {
    return timestampFromMs(Date.now());
  }
}
