// Route maxBodySize → 413 BODY_TOO_LARGE. A declared Content-Length over the limit is refused
// before a byte of the body is read (and, with Expect: 100-continue, before the 100). A body
// without Content-Length is counted by the door while it streams (proxy/body-limit.ts).
import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

export const TOO_LARGE = deny('BODY_TOO_LARGE');

export function createBodyLimitStage(): Stage {
  return { name: 'bodyLimit', run };
}

function run(ctx: RequestContext): Outcome {
  const route = ctx.route;
  const max = route === undefined ? undefined : ctx.plan.maxBodySize[route.index];
  if (max === undefined) return CONTINUE;
  const declared = ctx.contentLength;
  if (declared !== undefined && Number(declared) > max) {
    ctx.note('bodyLimit', `Content-Length ${declared} exceeds ${max}`);
    return TOO_LARGE;
  }
  return CONTINUE;
}
