// The compiled, immutable form of a policy. Built once per (re)load by compile.ts and swapped
// atomically; a request keeps the Plan it started with. Sections are declared by the stage that
// owns them; a section whose feature is not built yet is refused at compile time, never ignored.
import type { Diagnostic } from '../policy/diagnostics.js';
import type { LimitsPlan } from '../limits/compile.js';
import type { PolicyDocument } from '../policy/schema.js';
import type { CompiledRoute, PathRules, Router } from '../routing/route.js';
import type { AuthnPlan, IpRulesPlan } from '../authn/compile.js';
import type { IdentityJwtSigner } from '../authn/identity-jwt.js';
import type { BreakerSettings } from '../upstream/breaker.js';
import type { RbacPlan } from '../authz/compile.js';
import type { AuditPlan } from '../audit/compile.js';

export interface UpstreamTarget {
  /** Origin, e.g. http://127.0.0.1:3000 */
  readonly origin: string;
  /** Path prefix of the target URL ("" when none), prepended to the forwarded path. */
  readonly basePath: string;
}

export interface UpstreamPlan {
  readonly name: string;
  readonly targets: readonly UpstreamTarget[];
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly connections: number;
  readonly retries: number;
  /** Circuit breaker per target (L-resilience); undefined: no breaker. */
  readonly breaker?: BreakerSettings | undefined;
}

export interface Plan {
  /** sha256 of the merged, resolved policy: names a version in logs, audit and /admin/policy. */
  readonly hash: string;
  readonly loadedAt: number;
  readonly files: readonly string[];
  readonly routes: readonly CompiledRoute[];
  readonly router: Router;
  /** `paths` and method override (the route stage); absent in hand-built plans: the defaults. */
  readonly paths?: PathRules;
  readonly upstreams: ReadonlyMap<string, UpstreamPlan>;
  /** CIDRs whose X-Forwarded-For / X-Request-Id are believed. */
  readonly trustedProxies: readonly string[];
  /** API keys, JWT issuers, per-route authenticators, forwarded identity (L-authn); absent in hand-built plans. */
  readonly authn?: AuthnPlan;
  /** Top-level and per-route ipAllow/ipDeny (L-authn). */
  readonly ipRules?: IpRulesPlan;
  /** Expanded roles and per-route require/tenantParam/shadow (L-authz); absent in hand-built plans. */
  readonly rbac?: RbacPlan;
  /** `audit:` (L-audit); undefined: no audit section. Route modes live on CompiledRoute.audit. */
  readonly audit?: AuditPlan | undefined;
  /** Tenant tiers, route limits and the store settings (issue 5); undefined when nothing is limited. */
  readonly limits?: LimitsPlan | undefined;
  readonly warnings: readonly Diagnostic[];
  /** `authentication.forward.jwt`: signs the identity token forwarded to upstreams (undefined: off). */
  readonly identityJwt?: IdentityJwtSigner | undefined;
  /** The merged document, as validated (secrets resolved from env:/file: are in here: never log it whole). */
  readonly document: PolicyDocument;
}
