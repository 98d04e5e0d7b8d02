// The `routes` section → CompiledRoute[] in file order: precompiled path matchers, method/host
// sets, upstream references resolved (the only upstream when none is named), shadowed routes warned.
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument, RouteSpec } from '../policy/schema.js';
import { didYouMean } from '../policy/suggest.js';
import { type CompiledPattern, checkPattern, compilePattern } from './pattern.js';
import type { CompiledRoute, PathRules, Router } from './route.js';
import { compileRouter } from './router.js';

declare module '../core/plan.js' {
  interface Plan {
    /** Every route in file order, as the route stage matches them. */
    readonly routes: readonly CompiledRoute[];
    readonly router: Router;
    /** `paths` and method override. */
    readonly paths: PathRules;
  }
}

export interface RoutingSection {
  readonly routes: readonly CompiledRoute[];
  readonly router: Router;
  readonly paths: PathRules;
}

/** The `routes` and `paths` sections. */
export function compileRouting(doc: PolicyDocument, cx: CompileContext): RoutingSection {
  const routes = compileRoutes(doc, cx);
  return { routes, router: compileRouter(routes), paths: compilePathRules(doc, routes) };
}

function upstreamOf(spec: RouteSpec, at: (string | number)[], declared: string[], cx: CompileContext): string | undefined {
  if (spec.upstream !== undefined) {
    if (declared.includes(spec.upstream)) return spec.upstream;
    cx.error([...at, 'upstream'], `unknown upstream "${spec.upstream}"${didYouMean(spec.upstream, declared)}`);
    return undefined;
  }
  if (declared.length === 1) return declared[0];
  cx.error(at, declared.length === 0 ? 'no upstream to send this route to: declare one under upstreams' : `no upstream given and there are ${declared.length} (${declared.join(', ')}): set upstream`);
  return undefined;
}

function hostsOf(spec: RouteSpec, at: (string | number)[], cx: CompileContext): Set<string> | undefined {
  const host = spec.match.host;
  if (host === undefined) return undefined;
  const list = Array.isArray(host) ? host : [host];
  list.forEach((h, i) => {
    if (!/^[A-Za-z0-9.-]+$/.test(h)) cx.error([...at, 'match', 'host', ...(Array.isArray(host) ? [i] : [])], `"${h}" is not a host name (hosts are matched without a port)`);
  });
  return new Set(list.map((h) => h.toLowerCase()));
}

function covers(superset: ReadonlySet<string> | undefined, subset: ReadonlySet<string> | undefined): boolean {
  if (superset === undefined) return true;
  if (subset === undefined) return false;
  for (const v of subset) if (!superset.has(v)) return false;
  return true;
}

export function compileRoutes(doc: PolicyDocument, cx: CompileContext): CompiledRoute[] {
  const declared = Object.keys(doc.upstreams ?? {});
  const routes: CompiledRoute[] = [];
  (doc.routes ?? []).forEach((spec, index) => {
    const at = ['routes', index];
    const problem = checkPattern(spec.match.path);
    if (problem !== undefined) cx.error([...at, 'match', 'path'], problem);
    const matcher: CompiledPattern | undefined = problem === undefined ? compilePattern(spec.match.path) : undefined;
    const hosts = hostsOf(spec, at, cx);
    const upstream = upstreamOf(spec, at, declared, cx);
    const isPublic = spec.public === true;
    for (const key of ['require', 'tenantParam', 'authenticate'] as const) {
      if (isPublic && spec[key] !== undefined) cx.error([...at, key], `a public route does not authenticate, so ${key} cannot apply`);
    }
    if (spec.tenantParam !== undefined && matcher !== undefined && !matcher.params.includes(spec.tenantParam)) {
      cx.error([...at, 'tenantParam'], `the path pattern has no parameter {${spec.tenantParam}}${didYouMean(spec.tenantParam, matcher.params)}`);
    }
    const overrides = spec.methodOverride;
    if (overrides !== undefined && spec.match.methods !== undefined) {
      overrides.forEach((m, j) => {
        if (!spec.match.methods!.includes(m))
          cx.error([...at, 'methodOverride', j], `${m} is not one of this route's methods (${spec.match.methods!.join(', ')}): a request overridden to it would never match this route`);
      });
    }
    if (matcher === undefined || upstream === undefined) return;
    routes.push({
      name: spec.name,
      index,
      source: cx.position(at),
      hosts,
      methods: spec.match.methods !== undefined ? new Set(spec.match.methods) : undefined,
      matcher,
      public: isPublic,
      upstream,
      methodOverride: overrides !== undefined ? new Set(overrides) : undefined,
    });
  });
  warnShadowed(routes, cx);
  return routes;
}

/** `paths` and what the routes need of the route stage. */
function compilePathRules(doc: PolicyDocument, routes: readonly CompiledRoute[]): PathRules {
  return {
    semicolons: doc.paths?.semicolons ?? 'unambiguous',
    emptySegments: doc.paths?.emptySegments ?? 'unambiguous',
    methodOverride: routes.some((r) => r.methodOverride !== undefined),
  };
}

/** A route that an earlier route matches entirely can never be reached. */
function warnShadowed(routes: readonly CompiledRoute[], cx: CompileContext): void {
  for (let j = 0; j < routes.length; j++) {
    const later = routes[j]!;
    for (let i = 0; i < j; i++) {
      const earlier = routes[i]!;
      if (!covers(earlier.methods, later.methods) || !covers(earlier.hosts, later.hosts)) continue;
      if (!(later.matcher as CompiledPattern).coveredBy(earlier.matcher as CompiledPattern)) continue;
      cx.warn(['routes', later.index], `route "${later.name}" is never reached: route "${earlier.name}" (${cx.where(['routes', earlier.index])}) matches every request it would`);
      break;
    }
  }
}
