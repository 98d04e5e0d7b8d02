// A route as the route stage matches it: compiled once per Plan, frozen. Other stages know it only
// by its identity (core/route.ts) and keep their own per-route settings.
import type { Route } from '../core/route.js';

/** A compiled path pattern: literal segments, `{name}`, `*`, `**`. */
export interface PathMatcher {
  readonly pattern: string;
  /** Returns the captured params (an empty frozen object when none), or undefined on no match. */
  match(path: string): Readonly<Record<string, string>> | undefined;
}

export interface CompiledRoute extends Route {
  /** Lower-case hosts; undefined matches any host. */
  readonly hosts: ReadonlySet<string> | undefined;
  /** Upper-case methods; undefined matches any method. */
  readonly methods: ReadonlySet<string> | undefined;
  readonly matcher: PathMatcher;
  /** Methods a POST may be overridden to (method-override headers); undefined: the headers are removed. */
  readonly methodOverride: ReadonlySet<string> | undefined;
}

/** How the route stage reads what could make the upstream see another route than this gateway. */
export interface PathRules {
  /** `paths.semicolons`: ";" path parameters refused, accepted when they do not change the route, or ignored. */
  readonly semicolons: 'reject' | 'unambiguous' | 'allow';
  /** `paths.emptySegments`: "//" refused, accepted when merging the slashes does not change the route, or ignored. */
  readonly emptySegments: 'reject' | 'unambiguous' | 'allow';
  /** Whether any route honours method-override headers (else they are never read, only removed). */
  readonly methodOverride: boolean;
}

/** Why a route did or did not match (for explain). */
export interface RouteAttempt {
  readonly route: string;
  readonly matched: boolean;
  readonly reason: string;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  readonly params: Readonly<Record<string, string>>;
}

export interface Router {
  /** First match in file order; host is lower-case without port, method upper-case. */
  find(method: string, host: string, path: string): RouteMatch | undefined;
  /** Same decision as find, with a reason for every route tried (explain). */
  explain(method: string, host: string, path: string): { match: RouteMatch | undefined; attempts: RouteAttempt[] };
}
