// The route table: first match in file order. Routes are bucketed by their first literal path
// segment (routes starting with a wildcard go in every bucket) so a lookup only tries routes that
// can match, in their original order.
import type { CompiledRoute, RouteAttempt, RouteMatch, Router } from './route.js';

interface IndexedMatcher {
  readonly firstLiteral?: string | undefined;
}

function firstLiteralOf(route: CompiledRoute): string | undefined {
  return (route.matcher as IndexedMatcher).firstLiteral;
}

function firstSegment(path: string): string {
  const end = path.indexOf('/', 1);
  return end === -1 ? path.slice(1) : path.slice(1, end);
}

class IndexedRouter implements Router {
  readonly #routes: readonly CompiledRoute[];
  readonly #buckets: ReadonlyMap<string, readonly CompiledRoute[]>;
  /** Routes whose first segment is not a literal: the candidates for any other first segment. */
  readonly #wildcard: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.#routes = routes;
    const wildcard = routes.filter((r) => firstLiteralOf(r) === undefined);
    const buckets = new Map<string, CompiledRoute[]>();
    for (const r of routes) {
      const key = firstLiteralOf(r);
      if (key !== undefined && !buckets.has(key)) {
        buckets.set(
          key,
          routes.filter((x) => firstLiteralOf(x) === key || firstLiteralOf(x) === undefined),
        );
      }
    }
    this.#buckets = buckets;
    this.#wildcard = wildcard;
    Object.freeze(this);
  }

  find(method: string, host: string, path: string): RouteMatch | undefined {
    const candidates = this.#buckets.size === 0 ? this.#wildcard : (this.#buckets.get(firstSegment(path)) ?? this.#wildcard);
    for (let i = 0; i < candidates.length; i++) {
      const route = candidates[i]!;
      if (route.methods !== undefined && !route.methods.has(method)) continue;
      if (route.hosts !== undefined && !route.hosts.has(host)) continue;
      const params = route.matcher.match(path);
      if (params !== undefined) return { route, params };
    }
    return undefined;
  }

  explain(method: string, host: string, path: string): { match: RouteMatch | undefined; attempts: RouteAttempt[] } {
    const attempts: RouteAttempt[] = [];
    for (const route of this.#routes) {
      const reason = mismatch(route, method, host, path);
      if (reason !== undefined) {
        attempts.push({ route: route.name, matched: false, reason });
        continue;
      }
      const params = route.matcher.match(path)!;
      attempts.push({ route: route.name, matched: true, reason: `${method} ${path} matches ${route.matcher.pattern}` });
      return { match: { route, params }, attempts };
    }
    return { match: undefined, attempts };
  }
}

function mismatch(route: CompiledRoute, method: string, host: string, path: string): string | undefined {
  if (route.methods !== undefined && !route.methods.has(method)) {
    return `method ${method} is not one of ${[...route.methods].join(', ')}`;
  }
  if (route.hosts !== undefined && !route.hosts.has(host)) {
    return `host ${JSON.stringify(host)} is not one of ${[...route.hosts].join(', ')}`;
  }
  if (route.matcher.match(path) === undefined) return `path ${path} does not match ${route.matcher.pattern}`;
  return undefined;
}

export function compileRouter(routes: readonly CompiledRoute[]): Router {
  return new IndexedRouter(routes);
}
