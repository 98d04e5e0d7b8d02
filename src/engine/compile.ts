// Loaded policy → frozen Plan. Each section has its compiler `compileX(doc, cx)`; compilePolicy
// runs them all, collects every diagnostic, and refuses the policy on any error.
import { createHash } from 'node:crypto';
import { compileRouter } from '../routing/router.js';
import { compilePathRules, compileRoutes } from '../routing/compile.js';
import { compileUpstreams } from '../upstream/compile.js';
import { compileAuthn, compileIpRules } from '../authn/compile.js';
import { compileIdentityJwt } from '../authn/identity-jwt.js';
import { compileRbac } from '../authz/compile.js';
import { compileLimits } from '../limits/compile.js';
import { compileAudit } from '../audit/compile.js';
import { parseCidr } from '../policy/cidr.js';
import { CompileContext } from '../policy/compile-context.js';
import { PolicyError, type Diagnostic } from '../policy/diagnostics.js';
import { deepFreeze } from '../policy/freeze.js';
import type { LoadedPolicy } from '../policy/load.js';
import type { Plan } from './plan.js';
import type { PolicyDocument } from '../policy/schema.js';
import type { KeyPath } from '../policy/source-map.js';

interface UnsupportedKey {
  /** Key path; `*` stands for any route index or any upstream name. */
  readonly path: readonly string[];
  /** Refuse only values this accepts (default: any value that is set). */
  readonly when?: (value: unknown) => boolean;
}

// ─── UNSUPPORTED: keys whose behaviour is not built yet ──────────────────────────────────────────
// Every key here is refused with "not supported yet" rather than accepted and silently ignored.
// When you build a feature, delete its lines here and wire your section compiler into compilePolicy.
export const UNSUPPORTED: readonly UnsupportedKey[] = [
];
// ─────────────────────────────────────────────────────────────────────────────────────────────────

export function refuseUnsupported(doc: PolicyDocument, cx: CompileContext, list: readonly UnsupportedKey[] = UNSUPPORTED): void {
  const visit = (value: unknown, rest: readonly string[], at: KeyPath, entry: UnsupportedKey): void => {
    if (value === undefined || value === null) return;
    if (rest.length === 0) {
      if (entry.when === undefined || entry.when(value)) cx.errorAtKey(at, 'not supported yet');
      return;
    }
    const [head, ...tail] = rest as [string, ...string[]];
    if (head !== '*') return visit((value as Record<string, unknown>)[head], tail, [...at, head], entry);
    if (Array.isArray(value)) value.forEach((v, i) => visit(v, tail, [...at, i], entry));
    else if (typeof value === 'object') for (const [k, v] of Object.entries(value)) visit(v, tail, [...at, k], entry);
  };
  for (const entry of list) visit(doc, entry.path, [], entry);
}

export function compileTrustedProxies(doc: PolicyDocument, cx: CompileContext): string[] {
  const out: string[] = [];
  (doc.trustedProxies ?? []).forEach((value, i) => {
    const c = parseCidr(value);
    if (typeof c === 'string') cx.error(['trustedProxies', i], c);
    else out.push(value);
  });
  return out;
}

function checkCidrLists(doc: PolicyDocument, cx: CompileContext): void {
  const check = (list: readonly string[] | undefined, at: KeyPath): void =>
    list?.forEach((value, i) => {
      const c = parseCidr(value);
      if (typeof c === 'string') cx.error([...at, i], c);
    });
  check(doc.ipAllow, ['ipAllow']);
  check(doc.ipDeny, ['ipDeny']);
  doc.routes?.forEach((r, i) => {
    check(r.ipAllow, ['routes', i, 'ipAllow']);
    check(r.ipDeny, ['routes', i, 'ipDeny']);
  });
}

/** Canonical JSON (sorted keys) so the hash names the policy, not its formatting or file split. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export function compilePolicy(loaded: LoadedPolicy): { plan: Plan; warnings: Diagnostic[] } {
  const doc = loaded.document;
  const cx = new CompileContext(loaded);
  refuseUnsupported(doc, cx);
  checkCidrLists(doc, cx);
  const trustedProxies = compileTrustedProxies(doc, cx);
  const upstreams = compileUpstreams(doc, cx);
  const routes = compileRoutes(doc, cx, upstreams);
  const used = new Set(routes.map((r) => r.upstream));
  for (const name of upstreams.keys()) {
    if (!used.has(name)) cx.warn(['upstreams', name], `upstream "${name}" is not used by any route`);
  }
  // Section compilers of later issues go here: `const authn = compileAuthentication(doc, cx);` …
  const identityJwt = compileIdentityJwt(doc, cx);
  const authn = compileAuthn(doc, cx, routes);
  const ipRules = compileIpRules(doc, routes, trustedProxies);
  const rbac = compileRbac(doc, cx, routes);
  const limits = compileLimits(doc, cx, routes);
  const audit = compileAudit(doc, cx);

  if (cx.hasErrors) throw new PolicyError(cx.diagnostics);
  const warnings = cx.warnings;
  const plan: Plan = deepFreeze({
    hash: createHash('sha256').update(canonicalJson(doc)).digest('hex'),
    loadedAt: Date.now(),
    files: [...loaded.files],
    routes,
    router: compileRouter(routes),
    paths: compilePathRules(doc, routes),
    upstreams,
    trustedProxies,
    authn,
    ipRules,
    rbac,
    limits,
    audit,
    identityJwt,
    warnings,
    document: doc,
  });
  return { plan, warnings };
}
