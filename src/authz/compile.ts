// The `roles` section and each route's `require` / `tenantParam` / `shadow` → RbacPlan. Role
// inheritance is expanded here, once (any depth; cycles and unknown roles are errors naming the
// chain); each route's required permissions are precompiled into the grants that would cover them.

import type { Route } from '../core/route.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { didYouMean } from '../policy/suggest.js';
import { anyCovers, compileRequirement, normalizePermission, type Requirement } from './permissions.js';
import { GrantResolver } from './rbac.js';

/** What the authorize stage checks on one route. */
declare module '../core/plan.js' {
  interface Plan {
    /** Expanded roles and per-route require/tenantParam/shadow. */
    readonly rbac: RbacPlan;
  }
}

export interface RouteAuthz {
  readonly route: string;
  /** All of these (AND), in the order written. */
  readonly requirements: readonly Requirement[];
  readonly tenantParam: string | undefined;
  /** Decide and record, never enforce. */
  readonly shadow: boolean;
}

export interface RbacPlan {
  /** role → expanded grants (grant → how the role gets it: "analyst" or "analyst → viewer"). */
  readonly roles: ReadonlyMap<string, ReadonlyMap<string, string>>;
  /** By route index; routes with nothing to authorize have no entry. */
  readonly routes: ReadonlyMap<number, RouteAuthz>;
  readonly grants: GrantResolver;
  /** Cross-tenant roles (own `crossTenant: true` or inherited) → how: "support" or "tier2 → support". */
  readonly crossTenant: ReadonlyMap<string, string>;
}

type Path = (string | number)[];

function expandRoles(doc: PolicyDocument, cx: CompileContext): Map<string, Map<string, string>> {
  const specs = doc.roles ?? {};
  const names = Object.keys(specs);
  const done = new Map<string, Map<string, string>>();
  const reportedCycles = new Set<string>();

  // Unknown parents are reported once, where they are written.
  for (const name of names) {
    (specs[name]!.inherits ?? []).forEach((parent, j) => {
      if (!Object.hasOwn(specs, parent)) cx.error(['roles', name, 'inherits', j], `roles.${name} → ${parent}: role "${parent}" is not declared${didYouMean(parent, names)}`);
    });
  }

  const visit = (name: string, stack: string[]): Map<string, string> => {
    const cached = done.get(name);
    if (cached !== undefined) return cached;
    const grants = new Map<string, string>();
    const spec = specs[name]!;
    for (const p of spec.permissions ?? []) grants.set(normalizePermission(p), name);
    (spec.inherits ?? []).forEach((parent, j) => {
      if (!Object.hasOwn(specs, parent)) return;
      const at = stack.indexOf(parent);
      if (at !== -1 || parent === name) {
        const cycle = [...stack.slice(at === -1 ? stack.length : at), name, parent];
        const key = [...new Set(cycle)].sort().join(',');
        if (!reportedCycles.has(key)) {
          reportedCycles.add(key);
          cx.error(['roles', name, 'inherits', j], `inheritance cycle: roles.${cycle.join(' → ')}`);
        }
        return;
      }
      for (const [grant, via] of visit(parent, [...stack, name])) if (!grants.has(grant)) grants.set(grant, `${name} → ${via}`);
    });
    done.set(name, grants);
    return grants;
  };
  for (const name of names) visit(name, []);
  return done;
}

/** Every concrete permission a role or key writes: did-you-mean candidates for `require`. */
function writtenPermissions(doc: PolicyDocument): Set<string> {
  const out = new Set<string>();
  for (const spec of Object.values(doc.roles ?? {})) for (const p of spec.permissions ?? []) if (!p.includes('*')) out.add(p);
  for (const k of doc.authentication?.apiKeys?.keys ?? []) for (const p of k.permissions ?? []) if (!p.includes('*')) out.add(p);
  for (const m of doc.authentication?.mtls ?? []) for (const p of m.permissions ?? []) if (!p.includes('*')) out.add(p);
  return out;
}

function warnUnusedRoles(doc: PolicyDocument, cx: CompileContext): void {
  // A JWT issuer that maps a roles claim may hand out any role: then no role is provably unused.
  if ((doc.authentication?.jwt ?? []).some((j) => j.claims?.roles !== undefined)) return;
  const used = new Set<string>();
  for (const spec of Object.values(doc.roles ?? {})) for (const r of spec.inherits ?? []) used.add(r);
  for (const k of doc.authentication?.apiKeys?.keys ?? []) for (const r of k.roles ?? []) used.add(r);
  for (const m of doc.authentication?.mtls ?? []) for (const r of m.roles ?? []) used.add(r);
  for (const name of Object.keys(doc.roles ?? {})) {
    if (!used.has(name)) cx.warn(['roles', name], `role "${name}" is not used: no API key has it, no role inherits it and no JWT issuer maps a roles claim`);
  }
}

/** Roles that are cross-tenant themselves or through any role they inherit, with the chain that makes them so. */
function crossTenantRoles(doc: PolicyDocument): Map<string, string> {
  const specs = doc.roles ?? {};
  const out = new Map<string, string>();
  const visit = (name: string, seen: Set<string>): string | undefined => {
    const spec = specs[name];
    if (spec === undefined || seen.has(name)) return undefined;
    if (spec.crossTenant === true) return name;
    seen.add(name);
    for (const parent of spec.inherits ?? []) {
      const via = visit(parent, seen);
      if (via !== undefined) return `${name} → ${via}`;
    }
    return undefined;
  };
  for (const name of Object.keys(specs)) {
    const via = visit(name, new Set());
    if (via !== undefined) out.set(name, via);
  }
  return out;
}

export function compileRbac(doc: PolicyDocument, cx: CompileContext, routes: readonly Route[]): RbacPlan {
  const roles = expandRoles(doc, cx);
  const allGrants = new Set<string>();
  for (const grants of roles.values()) for (const g of grants.keys()) allGrants.add(g);
  for (const k of doc.authentication?.apiKeys?.keys ?? []) for (const p of k.permissions ?? []) allGrants.add(normalizePermission(p));
  const written = writtenPermissions(doc);

  const perRoute = new Map<number, RouteAuthz>();
  for (const route of routes) {
    const at: Path = ['routes', route.index];
    const spec = doc.routes?.[route.index];
    const require = spec?.require ?? [];
    const tenantParam = spec?.tenantParam;
    const shadow = spec?.shadow === true;
    if (route.public) {
      if (shadow) cx.error([...at, 'shadow'], 'a public route does not authorize, so shadow cannot apply');
      continue;
    }
    require.forEach((p, j) => {
      if (!anyCovers(allGrants, p)) cx.warn([...at, 'require', j], `no role grants "${p}"${didYouMean(p, written)}`);
    });
    if (require.length === 0 && tenantParam === undefined && !shadow) continue;
    perRoute.set(route.index, {
      route: route.name,
      requirements: require.map(compileRequirement),
      tenantParam,
      shadow,
    });
  }
  warnUnusedRoles(doc, cx);
  const crossTenant = crossTenantRoles(doc);
  // An identity provider's roles claim is trusted as written: it could hand out the widest role there is.
  if (crossTenant.size > 0) {
    (doc.authentication?.jwt ?? []).forEach((j, i) => {
      if (j.claims?.roles !== undefined)
        cx.warn(
          ['authentication', 'jwt', i, 'claims', 'roles'],
          `tokens of issuer "${j.name}" may carry a cross-tenant role (${[...crossTenant.keys()].join(', ')}) in their roles claim: make sure the identity provider grants it only to operators`,
        );
    });
  }
  return { roles, routes: perRoute, grants: new GrantResolver(roles), crossTenant };
}
