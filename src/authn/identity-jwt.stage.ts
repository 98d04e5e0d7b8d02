// The identity-jwt stage: puts the signed identity token for an allowed, authenticated request on
// the context (the forwarder sends it in the signer's header). Awaits only on a cache miss.
import type { RequestContext } from '../core/context.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

export function createIdentityJwtStage(): Stage {
  return { name: 'identityJwt', run };
}

function run(ctx: RequestContext): Outcome | Promise<Outcome> {
  const signer = ctx.plan.identityJwt;
  const principal = ctx.principal;
  if (signer === undefined || principal === undefined) return CONTINUE;
  const token = signer.token(principal, Date.now(), ctx.plan.authn.forward.effectiveRoles.of(principal.roles));
  if (typeof token === 'string') {
    ctx.identityJwt = token;
    return CONTINUE;
  }
  return token.then((t) => {
    ctx.identityJwt = t;
    return CONTINUE;
  });
}
