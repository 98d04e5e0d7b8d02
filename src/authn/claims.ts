// Claim mapping (`claims: { subject: sub, tenant: org_id, roles: realm_access.roles }`) and the
// rule that identity values must be safe to put in a header. Paths are split once at compile time.

export type ClaimPath = readonly string[];

/** `realm_access.roles` → ['realm_access', 'roles']; the whole name is also tried first at lookup. */
export function compileClaimPath(path: string): ClaimPath {
  return path.includes('.') ? [path, ...path.split('.')] : [path];
}

/** The value at a claim path: the whole name first (URL-named claims contain dots), then the dot walk. */
export function claimAt(payload: Readonly<Record<string, unknown>>, path: ClaimPath): unknown {
  const whole = payload[path[0]!];
  if (whole !== undefined || path.length === 1) return whole;
  let cur: unknown = payload;
  for (let i = 1; i < path.length; i++) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[path[i]!];
  }
  return cur;
}

// Visible ASCII, single inner spaces allowed, no leading/trailing space: never CR, LF, NUL, DEL or
// non-ASCII (which Node would refuse to send, turning a bad claim into a 500).
const SAFE_VALUE = /^[\x21-\x7e](?:[\x20-\x7e]{0,1022}[\x21-\x7e])?$/;
// A list value is sent comma-joined, so an element cannot contain a comma or a space.
const SAFE_ELEMENT = /^[\x21-\x2b\x2d-\x7e]{1,256}$/;

export function isSafeHeaderValue(value: string): boolean {
  return SAFE_VALUE.test(value);
}

export function isSafeListElement(value: string): boolean {
  return SAFE_ELEMENT.test(value);
}

/** A claim that must be one safe string; undefined when it is missing or unusable. */
export function stringClaim(value: unknown): string | undefined | null {
  if (value === undefined) return undefined;
  if (typeof value === 'number' && Number.isFinite(value)) value = String(value);
  return typeof value === 'string' && isSafeHeaderValue(value) ? value : null;
}

/**
 * A claim that is a list of names: an array of strings, or one space-separated string (OAuth
 * `scope` style). Missing → []. null when any element is unsafe (the token is refused).
 */
export function listClaim(value: unknown): readonly string[] | null {
  if (value === undefined || value === null) return [];
  const items = typeof value === 'string' ? value.split(' ').filter((s) => s !== '') : value;
  if (!Array.isArray(items)) return null;
  for (const item of items) if (typeof item !== 'string' || !isSafeListElement(item)) return null;
  return items as string[];
}
