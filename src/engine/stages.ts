// THE order of a decision (DESIGN.md, "Request lifecycle"): one list, read top to bottom. Every
// door runs it through the engine; the proxy door then adds its own (the breaker) before it forwards.
import type { Logger } from 'pino';
import { createAuthenticateStage } from '../authn/authenticate.stage.js';
import { createIdentityJwtStage } from '../authn/identity-jwt.stage.js';
import { createIpRulesStage } from '../authn/ip-rules.stage.js';
import { Lockout } from '../authn/lockout.js';
import { createLockoutStage } from '../authn/lockout.stage.js';
import { createAuthorizeStage } from '../authz/authorize.stage.js';
import { createConditionStage } from '../authz/condition.stage.js';
import type { Stage } from '../core/stage.js';
import type { EventBus } from '../events.js';
import { createLimitsStage } from '../limits/limits.stage.js';
import type { StoreHolder } from '../limits/store.js';
import { MARK, type TraceSampler } from '../observability/trace-sampler.js';
import { createCorsStage } from '../routing/cors.stage.js';
import { createRewriteStage } from '../routing/rewrite.stage.js';
import { createRouteStage } from '../routing/route.stage.js';
import { createBodyLimitStage } from '../upstream/body-limit.stage.js';
import { createPreserveHostStage } from '../upstream/preserve-host.stage.js';
import { timed } from './timed-stage.js';

export interface StageParts {
  readonly logger?: Logger | undefined;
  /** The limits store (long-lived; app.ts builds it from store.url). */
  readonly store: StoreHolder;
  readonly bus?: EventBus | undefined;
  /** Set when tracing is on: sampled requests get spans for authentication, authorization and limits. */
  readonly sampler?: TraceSampler | undefined;
}

/** Where a decision may stop: `policy` decides what the policy says (no store, nothing spent), `full` also takes limits. */
export type DecisionScope = 'policy' | 'full';

export function createStages(parts: StageParts, scope: DecisionScope = 'full'): readonly Stage[] {
  const lockout = new Lockout(parts.store, parts.logger, parts.bus);
  const traced = parts.sampler !== undefined && scope === 'full';
  const span = (stage: Stage, at: number): Stage => (traced ? timed(stage, at) : stage);
  const policy: Stage[] = [
    createRouteStage(), // route match (no match → ROUTE_NOT_FOUND)
    createCorsStage(), // the CORS headers every answer to this request carries, denials included
    createIpRulesStage(), // ipAllow / ipDeny → IP_DENIED
    createLockoutStage(lockout), // authentication.lockout: a locked-out client IP → LOCKED_OUT, before credentials
    span(createAuthenticateStage({ logger: parts.logger, onFailure: (ctx, code) => lockout.onFailure(ctx, code) }), MARK.authnStart), // API key / JWT → principal
    span(createAuthorizeStage({ logger: parts.logger, bus: parts.bus }), MARK.authzStart), // RBAC + tenant isolation → PERMISSION_DENIED / TENANT_MISMATCH
    createConditionStage({ logger: parts.logger }), // the route's `when` (CEL) → CONDITION_FAILED
    createRewriteStage(), // routes[].rewrite: the path the upstream gets, after every check ran on the public one
  ];
  if (scope === 'policy') return Object.freeze(policy);
  return Object.freeze([
    ...policy,
    createBodyLimitStage(), // maxBodySize: declared Content-Length too large → BODY_TOO_LARGE, before reading
    createPreserveHostStage(), // upstreams.<name>.preserveHost: the Host that goes upstream must be one plain authority
    span(createLimitsStage(parts.store, parts.logger, parts.bus), MARK.limitsStart), // one store call: buckets + quota + concurrency
    createIdentityJwtStage(), // signed identity for the upstream (authentication.forward.jwt)
  ]);
}
