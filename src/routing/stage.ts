// The route stage: first match in file order; no match is ROUTE_NOT_FOUND (default deny).
// Two things could make the upstream act on another route than the one matched here, and both are
// settled before the match counts: ";" path parameters (cut off by Tomcat, Jetty and Spring before
// they route) under `paths.semicolons`, and method-override headers on routes that honour them.
import { deny, type Deny } from '../errors.js';
import { CONTINUE, type Outcome, type Stage } from '../pipeline.js';
import type { RequestContext } from '../context.js';
import { withoutParams } from './canonical.js';
import { OVERRIDE_NOT_POST, requestedOverride } from './method-override.js';
import type { PathRules, RouteMatch } from './route.js';

const NOT_FOUND = deny('ROUTE_NOT_FOUND');
const PARAMS_REFUSED = deny('BAD_REQUEST', 'The path carries ";" parameters, which this gateway refuses (paths.semicolons: reject).');
const PARAMS_AMBIGUOUS = deny('BAD_REQUEST', 'The path carries ";" parameters that change which route it matches once removed, as upstream frameworks remove them.');
const DEFAULT_RULES: PathRules = Object.freeze({ semicolons: 'unambiguous', methodOverride: false });

function sameParams(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  for (const k in a) if (a[k] !== b[k]) return false;
  return true;
}

/** The route for `method`, or a Deny when ";" parameters make the answer depend on who reads the path. */
function find(ctx: RequestContext, rules: PathRules, method: string): RouteMatch | Deny | undefined {
  const router = ctx.plan.router;
  const path = ctx.path;
  const match = router.find(method, ctx.host, path);
  if (rules.semicolons === 'allow' || path.indexOf(';') === -1) return match;
  if (rules.semicolons === 'reject') return PARAMS_REFUSED;
  const stripped = router.find(method, ctx.host, withoutParams(path));
  if (match === undefined && stripped === undefined) return undefined;
  if (match === undefined || stripped === undefined || match.route !== stripped.route || !sameParams(match.params, stripped.params)) {
    ctx.note('route', `";" parameters change the route: ${path} matches ${match?.route.name ?? 'nothing'}, ${withoutParams(path)} matches ${stripped?.route.name ?? 'nothing'}`);
    return PARAMS_AMBIGUOUS;
  }
  return match;
}

const isDeny = (v: RouteMatch | Deny | undefined): v is Deny => v !== undefined && (v as Deny).code !== undefined;

export const routeStage: Stage = {
  name: 'route',
  run(ctx: RequestContext): Outcome {
    const rules = ctx.plan.paths ?? DEFAULT_RULES;
    const method = ctx.req.method ?? 'GET';
    let match: RouteMatch | Deny | undefined;
    if (rules.methodOverride) {
      const override = requestedOverride(ctx.req.rawHeaders);
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
  },
};
