// Loaded policy → frozen Plan. Each stage folder compiles its own section (and declares it on the
// Plan); this is the one place that runs them all, collects every diagnostic, and refuses the
// policy on any error.
import { createHash } from 'node:crypto';
import { compileAudit, compileAuditModes } from '../audit/compile.js';
import type { KeyLookup, RevokedKeys } from '../authn/api-key.js';
import { compileAuthn, compileIpRules } from '../authn/compile.js';
import { compileIdentityJwt } from '../authn/identity-jwt.js';
import { compileRbac } from '../authz/compile.js';
import { compileConditions } from '../authz/condition.js';
import { canonicalJson } from '../canonical-json.js';
import type { Plan } from '../core/plan.js';
import { compileLimits } from '../limits/compile.js';
import { CompileContext } from '../policy/compile-context.js';
import { type Diagnostic, PolicyError } from '../policy/diagnostics.js';
import { deepFreeze } from '../policy/freeze.js';
import type { LoadedPolicy } from '../policy/load.js';
import { PolicyManager, type PolicyManagerOptions } from '../policy/manager.js';
import type { PolicyDocument } from '../policy/schema.js';
import { compileRouting } from '../routing/compile.js';
import { compileCors } from '../routing/cors.js';
import { compileRewrites } from '../routing/rewrite.js';
import { compileBodyLimits, compileUpstreams } from '../upstream/compile.js';
import { compileRouteForwarding } from '../upstream/route-forwarding.js';

declare module '../core/plan.js' {
  interface Plan {
    readonly warnings: readonly Diagnostic[];
    /** The merged document, as validated (secrets resolved from env:/file: are in here: never log it whole). */
    readonly document: PolicyDocument;
  }
}

/** Long-lived parts a compiled policy refers to. */
export interface CompileParts {
  /** Admin-created API keys, looked up after the policy's own. */
  readonly dynamicKeys?: (KeyLookup & RevokedKeys) | undefined;
}

export function compilePolicy(loaded: LoadedPolicy, parts: CompileParts = {}): { plan: Plan; warnings: Diagnostic[] } {
  const doc = loaded.document;
  const cx = new CompileContext(loaded);
  const upstreams = compileUpstreams(doc, cx);
  const routing = compileRouting(doc, cx);
  const routes = routing.routes;
  const used = new Set(routes.map((r) => r.upstream));
  for (const name of upstreams.keys()) {
    if (!used.has(name)) cx.warn(['upstreams', name], `upstream "${name}" is not used by any route`);
  }
  const identityJwt = compileIdentityJwt(doc, cx);
  const authn = compileAuthn(doc, cx, routes, parts.dynamicKeys);
  const ipRules = compileIpRules(doc, cx, routes);
  const rbac = compileRbac(doc, cx, routes);
  const conditions = compileConditions(doc, cx, routes);
  const limits = compileLimits(doc, cx, routes);
  const audit = compileAudit(doc, cx);
  const cors = compileCors(doc, cx, routes);
  const rewrites = compileRewrites(doc, cx, routes);
  const forwarding = compileRouteForwarding(doc, cx, authn, identityJwt?.header);

  if (cx.hasErrors) throw new PolicyError(cx.diagnostics);
  const warnings = cx.warnings;
  const plan: Plan = deepFreeze({
    hash: createHash('sha256').update(canonicalJson(doc)).digest('hex'),
    loadedAt: Date.now(),
    files: [...loaded.files],
    ...routing,
    upstreams,
    maxBodySize: compileBodyLimits(doc),
    authn,
    ipRules,
    rbac,
    conditions,
    limits,
    audit,
    auditModes: compileAuditModes(doc),
    identityJwt,
    cors,
    rewrites,
    ...forwarding,
    warnings,
    document: doc,
  });
  return { plan, warnings };
}

/** The running policy: loaded, compiled into a Plan, watched and swapped. */
export type PlanManager = PolicyManager<Plan>;

export function openPolicy(path: string, options: Omit<PolicyManagerOptions<Plan>, 'compile'>, parts: CompileParts = {}): Promise<PlanManager> {
  return PolicyManager.open(path, { ...options, compile: (loaded) => compilePolicy(loaded, parts) });
}
