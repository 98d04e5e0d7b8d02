// THE order of the pipeline (DESIGN.md, "Request lifecycle"): one list, read top to bottom.
// Forwarding follows the last stage; nothing else decides order.
import type { Logger } from 'pino';
import type { Stage } from '../core/stage.js';
import { routeStage } from '../routing/route.stage.js';
import { createIpRulesStage } from '../authn/ip-rules.stage.js';
import { createAuthenticateStage } from '../authn/authenticate.stage.js';
import { createAuthorizeStage } from '../authz/authorize.stage.js';
import { identityJwtStage } from '../authn/identity-jwt.js';
import { Balancers } from '../upstream/balancer.js';
import { BreakerStage } from '../proxy/breaker.stage.js';
import { bodyLimitStage } from '../upstream/body-limit.stage.js';
import { LimitsStage, type StoreHolder } from '../limits/limits.stage.js';
import { MemoryStore } from '../limits/memory-store.js';
import type { EventBus } from '../events.js';
import { Lockout, LockoutStage } from '../authn/lockout.js';

export interface StageParts {
  readonly logger?: Logger;
  /** Target selection + circuit breakers (long-lived; app.ts shares them with /admin/breakers). */
  readonly balancers?: Balancers;
  /** The limits store (long-lived; app.ts builds it from store.url). Default: in memory. */
  readonly store?: StoreHolder;
  readonly bus?: EventBus;
}

export function createStages(parts: StageParts = {}): readonly Stage[] {
  const store = parts.store ?? { store: new MemoryStore() };
  const lockout = new Lockout(store, parts.logger, parts.bus);
  return Object.freeze([
    routeStage, // route match (no match → ROUTE_NOT_FOUND)
    createIpRulesStage(), // ipAllow / ipDeny → IP_DENIED
    new LockoutStage(lockout), // authentication.lockout: a locked-out client IP → LOCKED_OUT, before credentials
    createAuthenticateStage({ logger: parts.logger, onFailure: (ctx, code) => lockout.onFailure(ctx, code) }), // API key / JWT → principal
    createAuthorizeStage({ logger: parts.logger }), // RBAC + tenant isolation → PERMISSION_DENIED / TENANT_MISMATCH
    bodyLimitStage, // maxBodySize: declared Content-Length too large → BODY_TOO_LARGE, before reading
    new LimitsStage(store, parts.logger, parts.bus), // one store call: buckets + quota + concurrency
    identityJwtStage, // signed identity for the upstream (authentication.forward.jwt)
    // Last, so no later denial can waste a half-open probe: picks the target, fast-fails BREAKER_OPEN.
    new BreakerStage(parts.balancers ?? new Balancers({ logger: parts.logger })),
  ]);
}
