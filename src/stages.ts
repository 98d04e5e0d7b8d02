// THE order of the pipeline (DESIGN.md, "Request lifecycle"): one list, read top to bottom.
// Forwarding follows the last stage; nothing else decides order.
import type { Logger } from 'pino';
import type { Stage } from './pipeline.js';
import { routeStage } from './routing/stage.js';
import { createIpRulesStage } from './authn/ip-stage.js';
import { createAuthenticateStage } from './authn/stage.js';
import { createAuthorizeStage } from './authz/stage.js';
import { identityJwtStage } from './upstream/identity-jwt.js';

export interface StageParts {
  readonly logger?: Logger;
}

export function createStages(parts: StageParts = {}): readonly Stage[] {
  return Object.freeze([
    routeStage, // route match (no match → ROUTE_NOT_FOUND)
    createIpRulesStage(), // ipAllow / ipDeny → IP_DENIED
    createAuthenticateStage({ logger: parts.logger }), // API key / JWT → principal
    createAuthorizeStage({ logger: parts.logger }), // RBAC + tenant isolation → PERMISSION_DENIED / TENANT_MISMATCH
    // limits (one store call: buckets + quota + concurrency): issue 5
    // breaker (fast-fail an open upstream): issue 6
    identityJwtStage, // signed identity for the upstream (authentication.forward.jwt)
  ]);
}
