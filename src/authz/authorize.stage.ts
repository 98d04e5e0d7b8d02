// The authorize stage (after authenticate, before limits): every required permission (AND) must be
// covered by the principal's grants, then the tenant path parameter must equal the principal's
// tenant exactly. A shadow route decides the same way, records the would-be decision, and lets the
// request through as its authentication alone would.
import type { Logger } from 'pino';
import type { RequestContext } from '../core/context.js';
import type { Principal } from '../core/principal.js';
import { type Deny, deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';
import type { EventBus } from '../events.js';
import { CellsBy2, crossTenantTotal, shadowDecisionsTotal } from '../observability/metrics.js';
import type { RbacPlan, RouteAuthz } from './compile.js';
import { satisfiedBy } from './permissions.js';

const NO_PRINCIPAL = deny('PERMISSION_DENIED', 'No authenticated principal.');
const NO_TENANT = deny('TENANT_MISMATCH', 'The caller belongs to no tenant; this route is tenant-scoped.');
const OTHER_TENANT = deny('TENANT_MISMATCH');

export interface AuthorizeStageOptions {
  readonly logger?: Pick<Logger, 'info'> | undefined;
  /** Where a cross-tenant pass is published for audit; none offline (`test`, `explain`). */
  readonly bus?: EventBus | undefined;
}

class AuthorizeStage implements Stage {
  readonly name = 'authorize';
  readonly #logger: Pick<Logger, 'info'> | undefined;
  readonly #bus: EventBus | undefined;
  /** One Deny per missing permission, built on first use (the body names it). */
  readonly #missing = new Map<string, Deny>();
  readonly #shadowCounters = new CellsBy2((route, decision) => shadowDecisionsTotal.labels(route, decision));

  constructor(options: AuthorizeStageOptions = {}) {
    this.#logger = options.logger;
    this.#bus = options.bus;
  }

  run(ctx: RequestContext): Outcome {
    const route = ctx.route;
    if (route === undefined || route.public) return CONTINUE;
    const rbac = ctx.plan.rbac;
    const authz = rbac?.routes.get(route.index);
    if (rbac === undefined || authz === undefined) {
      ctx.note(this.name, 'nothing to authorize on this route');
      return CONTINUE;
    }
    const outcome = this.#decide(ctx, rbac, authz);
    if (!authz.shadow) return outcome;
    return this.#shadow(ctx, authz, outcome);
  }

  #decide(ctx: RequestContext, rbac: RbacPlan, authz: RouteAuthz): Outcome {
    const p = ctx.principal;
    if (p === undefined) {
      ctx.note(this.name, 'no authenticated principal');
      return NO_PRINCIPAL;
    }
    const grants = rbac.grants.grantsOf(p);
    const reqs = authz.requirements;
    for (let i = 0; i < reqs.length; i++) {
      const req = reqs[i]!;
      const grant = satisfiedBy(grants, req);
      if (grant === undefined) {
        if (ctx.trace !== undefined) {
          ctx.note(this.name, `requires ${req.permission}: MISSING (granted: ${[...grants.has].join(', ') || 'nothing'})`);
          this.#noteUnknownRoles(ctx, rbac, p);
        }
        ctx.permission = req.permission;
        return this.#missingDeny(req.permission);
      }
      if (ctx.trace !== undefined) {
        const from = grants.origin.get(grant)!;
        ctx.note(this.name, `requires ${req.permission}: granted by ${from === 'direct' ? 'a direct permission' : `role ${from}`}${grant === req.permission ? '' : ` (${grant})`}`);
      }
    }
    const param = authz.tenantParam;
    if (param === undefined) {
      ctx.note(this.name, 'allowed');
      return CONTINUE;
    }
    const value = ctx.params?.[param];
    if (value !== p.tenant && rbac.crossTenant.size > 0) {
      const via = crossTenantRole(rbac, p);
      if (via !== undefined) return this.#crossTenant(ctx, authz, p, param, value ?? '', via);
    }
    if (p.tenant === undefined) {
      if (ctx.trace !== undefined) ctx.note(this.name, `tenant check: {${param}} is "${value ?? ''}", the principal has no tenant: TENANT_MISMATCH`);
      return NO_TENANT;
    }
    // Exact, case-sensitive: the canonicaliser decoded the path once, so this is the one spelling.
    if (value !== p.tenant) {
      if (ctx.trace !== undefined) ctx.note(this.name, `tenant check: {${param}} is "${value ?? ''}", the principal's tenant is "${p.tenant}": TENANT_MISMATCH`);
      return OTHER_TENANT;
    }
    // Traces are only collected by explain/test: build no strings for a live request.
    if (ctx.trace !== undefined) ctx.note(this.name, `tenant check: {${param}} is "${value}", matches the principal's tenant; allowed`);
    return CONTINUE;
  }

  // Rare by design (operators), so a published event and a counter per pass are affordable.
  #crossTenant(ctx: RequestContext, authz: RouteAuthz, p: Principal, param: string, target: string, via: string): Outcome {
    crossTenantTotal.labels(authz.route).inc();
    this.#bus?.publish({
      type: 'tenant.crossed',
      requestId: ctx.requestId,
      route: authz.route,
      subject: p.subject,
      keyId: p.keyId ?? null,
      callerTenant: p.tenant ?? null,
      targetTenant: target,
      role: via,
    });
    if (ctx.trace !== undefined)
      ctx.note(this.name, `tenant check: {${param}} is "${target}", the principal's tenant is ${p.tenant === undefined ? 'none' : `"${p.tenant}"`}; allowed across tenants by role ${via}`);
    return CONTINUE;
  }

  #shadow(ctx: RequestContext, authz: RouteAuthz, outcome: Outcome): Outcome {
    const decision = outcome === CONTINUE ? 'allow' : outcome.code;
    ctx.shadowDecision = decision;
    ctx.permission = undefined;
    this.#shadowCounters.of(authz.route, decision).inc();
    const missing = outcome !== CONTINUE ? outcome.extra?.missing : undefined;
    this.#logger?.info({ requestId: ctx.requestId, route: authz.route, decision, missing, subject: ctx.principal?.subject, tenant: ctx.principal?.tenant }, 'shadow decision');
    if (ctx.trace !== undefined) ctx.note(this.name, `shadow route: would ${decision === 'allow' ? 'allow' : `deny (${decision})`}; not enforced, continuing`);
    return CONTINUE;
  }

  #missingDeny(permission: string): Deny {
    let d = this.#missing.get(permission);
    if (d === undefined) {
      d = deny('PERMISSION_DENIED', `This route requires the permission "${permission}".`, undefined, { missing: permission });
      this.#missing.set(permission, d);
    }
    return d;
  }

  #noteUnknownRoles(ctx: RequestContext, rbac: RbacPlan, p: Principal): void {
    for (const r of p.roles) if (!rbac.grants.isRole(r)) ctx.note(this.name, `role "${r}" is not declared in the policy and grants nothing`);
  }
}

/** The first of the principal's roles that is cross-tenant, with its chain; undefined when none is. */
function crossTenantRole(rbac: RbacPlan, p: Principal): string | undefined {
  for (const r of p.roles) {
    const via = rbac.crossTenant.get(r);
    if (via !== undefined) return via;
  }
  return undefined;
}

export function createAuthorizeStage(options: AuthorizeStageOptions = {}): Stage {
  return new AuthorizeStage(options);
}
