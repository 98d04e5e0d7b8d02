// Just before authenticate: a client IP locked out by authentication.lockout (lockout.ts) gets
// 429 LOCKED_OUT on every non-public route, before its credentials are looked at.
import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import { ipKey } from '../ip-address.js';
import type { Lockout } from './lockout.js';

export function createLockoutStage(lockout: Lockout): Stage {
  return new LockoutStage(lockout);
}

class LockoutStage implements Stage {
  readonly name = 'lockout';
  readonly #lockout: Lockout;

  constructor(lockout: Lockout) {
    this.#lockout = lockout;
  }

  run(ctx: RequestContext): Outcome {
    const plan = ctx.plan.authn?.lockout;
    if (plan === undefined || ctx.route === undefined || ctx.route.public) return CONTINUE;
    const ms = this.#lockout.lockedFor(ipKey(ctx.clientIp, plan.ipv6Prefix) || '-');
    if (ms === 0) return CONTINUE;
    const retry = Math.max(1, Math.ceil(ms / 1000));
    ctx.note(this.name, `LOCKED_OUT (retry after ${retry}s)`);
    return deny('LOCKED_OUT', undefined, { 'retry-after': String(retry) });
  }
}
