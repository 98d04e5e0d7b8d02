// The breaker stage (last before forwarding): picks the upstream target round robin and fast-fails
// with 503 BREAKER_OPEN when every target's breaker refuses, Retry-After = the shortest remaining
// cooldown. The Admission it leaves on ctx is settled by the forwarder (status or error) and
// released by the server when the request ends without an upstream answer.

import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import { type Balancers, isAllOpen } from '../upstream/balancer.js';
import type { ProxyContext } from './context.js';

export function createBreakerStage(balancers: Balancers): Stage<ProxyContext> {
  return new BreakerStage(balancers);
}

class BreakerStage implements Stage<ProxyContext> {
  readonly name = 'breaker';
  readonly #balancers: Balancers;

  constructor(balancers: Balancers) {
    this.#balancers = balancers;
  }

  run(ctx: ProxyContext): Outcome {
    const route = ctx.route;
    if (route === undefined) return CONTINUE;
    const up = ctx.plan.upstreams.get(route.upstream);
    if (up === undefined) return CONTINUE;
    const pick = this.#balancers.pick(up);
    if (isAllOpen(pick)) {
      if (pick.unhealthy === true) {
        ctx.note('breaker', `every target of upstream "${up.name}" fails its health checks`);
        return deny('UPSTREAM_UNAVAILABLE', `No target of upstream "${up.name}" passes its health checks.`, { 'retry-after': String(Math.max(1, Math.ceil(pick.retryAfterMs / 1000))) });
      }
      ctx.note('breaker', `every target of upstream "${up.name}" is open`);
      const seconds = Math.max(1, Math.ceil(pick.retryAfterMs / 1000));
      return deny('BREAKER_OPEN', `The circuit breaker of upstream "${up.name}" is open.`, { 'retry-after': String(seconds) });
    }
    ctx.admission = pick;
    if (ctx.trace !== undefined) ctx.note('breaker', `target ${pick.handle.origin}`);
    return CONTINUE;
  }
}
