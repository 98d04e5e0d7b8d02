// The route stage: first match in file order; no match is ROUTE_NOT_FOUND (default deny).
import { deny } from '../errors.js';
import { CONTINUE, type Outcome, type Stage } from '../pipeline.js';
import type { RequestContext } from '../context.js';

const NOT_FOUND = deny('ROUTE_NOT_FOUND');

export const routeStage: Stage = {
  name: 'route',
  run(ctx: RequestContext): Outcome {
    const match = ctx.plan.router.find(ctx.req.method ?? 'GET', ctx.host, ctx.path);
    if (match === undefined) {
      ctx.note('route', `no route matches ${ctx.req.method} ${ctx.path}`);
      return NOT_FOUND;
    }
    ctx.route = match.route;
    ctx.params = match.params;
    if (ctx.trace !== undefined) ctx.note('route', `matched route ${match.route.name}`);
    return CONTINUE;
  },
};
