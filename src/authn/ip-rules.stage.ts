// The IP rules stage: top-level then per-route ipAllow/ipDeny against ctx.clientIp (the socket
// peer, or X-Forwarded-For walked right to left past trusted proxies: see client-ip.ts).

import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

const IP_DENIED = deny('IP_DENIED');

class IpRulesStage implements Stage {
  readonly name = 'ipRules';

  run(ctx: RequestContext): Outcome {
    const rules = ctx.plan.ipRules;
    if (rules.global?.denies(ctx.clientIp)) {
      ctx.note(this.name, `${ctx.clientIp || 'unknown address'} is denied by the top-level rules`);
      return IP_DENIED;
    }
    const rule = ctx.route === undefined ? undefined : rules.routes.get(ctx.route.index);
    if (rule?.denies(ctx.clientIp)) {
      ctx.note(this.name, `${ctx.clientIp || 'unknown address'} is denied by route ${ctx.route!.name}`);
      return IP_DENIED;
    }
    return CONTINUE;
  }
}

export function createIpRulesStage(): Stage {
  return new IpRulesStage();
}
