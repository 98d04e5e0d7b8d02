// The rewrite stage: after every check has run on the public path, the route's rewrite sets the
// path the upstream gets (the query is kept as sent). Never denies.
import type { RequestContext } from '../core/context.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

export function createRewriteStage(): Stage {
  return { name: 'rewrite', run };
}

function run(ctx: RequestContext): Outcome {
  const route = ctx.route;
  const rewrite = route === undefined ? undefined : ctx.plan.rewrites[route.index];
  if (rewrite === undefined) return CONTINUE;
  const path = rewrite(ctx.forwardPath, ctx.params ?? NO_PARAMS);
  ctx.upstreamPath = path;
  ctx.forwardPath = path;
  ctx.note('rewrite', `the upstream gets ${path}`);
  return CONTINUE;
}
