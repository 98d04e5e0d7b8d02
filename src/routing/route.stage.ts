// The route stage: first match in file order; no match is ROUTE_NOT_FOUND (default deny).
// Three things could make the upstream act on another route than the one matched here, and all are
// settled before the match counts: ";" path parameters (cut off by Tomcat, Jetty and Spring before
// they route) under `paths.semicolons`, empty segments ("//", merged by nginx, Tomcat and others)
// under `paths.emptySegments`, and method-override headers on routes that honour them.

import type { RequestContext } from '../core/context.js';
import { type Deny, deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import { withoutParams } from './canonical.js';
import { OVERRIDE_NOT_POST, requestedOverride } from './method-override.js';
import type { PathRules, RouteMatch } from './route.js';

const NOT_FOUND = deny('ROUTE_NOT_FOUND');
const PARAMS_REFUSED = deny('BAD_REQUEST', 'The path carries ";" parameters, which this gateway refuses (paths.semicolons: reject).');
const PARAMS_AMBIGUOUS = deny('BAD_REQUEST', 'The path carries ";" parameters that change which route it matches once removed, as upstream frameworks remove them.');
const SLASHES_REFUSED = deny('BAD_REQUEST', 'The path has an empty segment ("//"), which this gateway refuses (paths.emptySegments: reject).');
const SLASHES_AMBIGUOUS = deny('BAD_REQUEST', 'The path has an empty segment ("//") that changes which route it matches once merged, as upstream servers merge them.');

/** The path with every run of "/" made one, as nginx's merge_slashes and Tomcat read it. */
function mergeSlashes(path: string): string {
  let out = '';
  let from = 0;
  for (let i = path.indexOf('//'); i !== -1; i = path.indexOf('//', i + 1)) {
    out += path.slice(from, i);
    from = i + 1;
  }
  return out + path.slice(from);
}

function sameParams(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const k in a) if (a[k] !== b[k]) return false;
  return true;
}

/**
 * The route for `method`, or a Deny when ";" parameters or empty segments make the answer depend
 * on who reads the path: the path as an upstream framework reads it (parameters cut off, slashes
 * merged, as the rules say it may) must match the same route with the same parameters.
 */
function find(ctx: RequestContext, rules: PathRules, method: string): RouteMatch | Deny | undefined {
  const router = ctx.plan.router;
  const path = ctx.path;
  const match = router.find(method, ctx.host, path);
  const params = rules.semicolons !== 'allow' && path.indexOf(';') !== -1;
  const slashes = rules.emptySegments !== 'allow' && path.indexOf('//') !== -1;
  if (!params && !slashes) return match;
  if (params && rules.semicolons === 'reject') return PARAMS_REFUSED;
  if (slashes && rules.emptySegments === 'reject') return SLASHES_REFUSED;
  let read = params ? withoutParams(path) : path;
  if (slashes) read = mergeSlashes(read);
  const other = router.find(method, ctx.host, read);
  if (match === undefined && other === undefined) return undefined;
  if (match === undefined || other === undefined || match.route !== other.route || !sameParams(match.params, other.params)) {
    ctx.note('route', `${path} matches ${match?.route.name ?? 'nothing'}, but upstream servers read it as ${read}, which matches ${other?.route.name ?? 'nothing'}`);
    return params ? PARAMS_AMBIGUOUS : SLASHES_AMBIGUOUS;
  }
  return match;
}

const isDeny = (v: RouteMatch | Deny | undefined): v is Deny => v !== undefined && (v as Deny).code !== undefined;

export function createRouteStage(): Stage {
  return { name: 'route', run };
}

function run(ctx: RequestContext): Outcome {
  const rules = ctx.plan.paths;
  const method = ctx.method;
  let match: RouteMatch | Deny | undefined;
  if (rules.methodOverride) {
    const override = requestedOverride(ctx.rawHeaders);
    if (override !== undefined && typeof override !== 'string') return override;
    if (override !== undefined) {
      const overridden = find(ctx, rules, override);
      if (isDeny(overridden)) return overridden;
      if (overridden !== undefined && overridden.route.methodOverride?.has(override) === true) {
        // Frameworks honour an override on POST only: on another method the upstream would do what the headers do not say.
        if (method !== 'POST') return OVERRIDE_NOT_POST;
        ctx.methodOverride = override;
        match = overridden;
        ctx.note('route', `method override: routed and authorized as ${override}`);
      } else {
        ctx.note('route', `method override to ${override} is not honoured here: removed`);
      }
    }
  }
  match ??= find(ctx, rules, method);
  if (isDeny(match)) return match;
  if (match === undefined) {
    ctx.note('route', `no route matches ${method} ${ctx.path}`);
    return NOT_FOUND;
  }
  ctx.route = match.route;
  ctx.params = match.params;
  if (ctx.trace !== undefined) ctx.note('route', `matched route ${match.route.name}`);
  return CONTINUE;
}
