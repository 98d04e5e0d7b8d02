// Permissions are `resource:action`; a grant may wildcard either side (`reports:*`, `*:read`) or
// both (`*`, also written `*:*`). A check never scans grants: a required permission is turned, at
// compile time, into the (at most four) grants that would cover it, and the request does that many
// Set lookups.
//
// A wildcard in `require` is read literally, as a permission in its own right: `require: [admin:*]`
// is met only by a grant at least that broad (`admin:*` or `*`), never by `admin:read` alone. So
// "needs every admin action" cannot be satisfied by holding one of them.

const ALL = '*';

/** `*:*` → `*`; a bare name (no colon) stays as written and only it or `*` covers it. */
export function normalizePermission(p: string): string {
  return p === '*:*' ? ALL : p;
}

/** The grants that cover `required`, most specific first. */
export function coveringGrants(required: string): readonly string[] {
  const p = normalizePermission(required);
  if (p === ALL) return [ALL];
  const colon = p.indexOf(':');
  if (colon === -1) return [p, ALL];
  const resource = p.slice(0, colon);
  const action = p.slice(colon + 1);
  const out = new Set<string>([p]);
  if (action !== '*') out.add(`${resource}:*`);
  if (resource !== '*') out.add(`*:${action}`);
  out.add(ALL);
  out.delete('*:*');
  return [...out];
}

/** A required permission, compiled: the grants any one of which satisfies it. */
export interface Requirement {
  readonly permission: string;
  readonly covers: readonly string[];
}

export function compileRequirement(permission: string): Requirement {
  return Object.freeze({ permission, covers: Object.freeze(coveringGrants(permission)) });
}

/** What a principal (its roles plus direct permissions) holds, and where each grant came from. */
export interface GrantSet {
  readonly has: ReadonlySet<string>;
  /** grant → the role that declares it, or "direct" for a credential's own permissions. */
  readonly origin: ReadonlyMap<string, string>;
}

/** The grant that satisfies `req` in `grants`, or undefined. Allocation free. */
export function satisfiedBy(grants: GrantSet, req: Requirement): string | undefined {
  const covers = req.covers;
  for (let i = 0; i < covers.length; i++) if (grants.has.has(covers[i]!)) return covers[i];
  return undefined;
}

/** Whether any grant in `granted` covers `required` (compile-time use: warnings, did-you-mean). */
export function anyCovers(granted: Iterable<string>, required: string): boolean {
  const set = granted instanceof Set ? (granted as Set<string>) : new Set(granted);
  return coveringGrants(required).some((g) => set.has(g));
}
