// What the upstream is told about the caller. Every client-sent copy of these headers is removed
// (whatever its case, however often, whatever Connection lists) and the gateway's values are set;
// unless forwardCredentials is true, the credentials themselves are removed too.
import type { Principal } from './principal.js';
import { FrozenSet } from '../policy/freeze.js';

export interface IdentityForward {
  readonly subject: string;
  readonly tenant: string;
  readonly roles: string;
  readonly keyId: string;
  /** Lower-case names a client may never send through: identity headers, and credentials unless forwarded. */
  readonly strip: ReadonlySet<string>;
}

export const FORWARD_DEFAULTS = Object.freeze({ subject: 'x-auth-subject', tenant: 'x-auth-tenant', roles: 'x-auth-roles', keyId: 'x-auth-key-id' });

/** Roles header values by roles array: principals are long-lived (static keys, cached tokens), so join once. */
const joinedRoles = new WeakMap<readonly string[], string>();
function rolesValue(roles: readonly string[]): string {
  let v = joinedRoles.get(roles);
  if (v === undefined) joinedRoles.set(roles, (v = roles.join(',')));
  return v;
}

/** The gateway's identity headers for this principal (appended as name/value pairs to `out`). */
export function identityHeaders(forward: IdentityForward, principal: Principal | undefined, out: string[]): void {
  if (principal === undefined) return;
  out.push(forward.subject, principal.subject);
  if (principal.tenant !== undefined) out.push(forward.tenant, principal.tenant);
  if (principal.roles.length > 0) out.push(forward.roles, rolesValue(principal.roles));
  if (principal.keyId !== undefined) out.push(forward.keyId, principal.keyId);
}

/** Like identityHeaders, into a plain headers object. */
export function setIdentityHeaders(forward: IdentityForward, principal: Principal | undefined, headers: Record<string, string | string[] | undefined>): void {
  if (principal === undefined) return;
  headers[forward.subject] = principal.subject;
  if (principal.tenant !== undefined) headers[forward.tenant] = principal.tenant;
  if (principal.roles.length > 0) headers[forward.roles] = rolesValue(principal.roles);
  if (principal.keyId !== undefined) headers[forward.keyId] = principal.keyId;
}

/**
 * Without an authentication section nothing is authenticated, but the identity headers are still
 * the gateway's to set: client copies are removed all the same. Credentials pass (nobody here
 * consumed them).
 */
export const DEFAULT_IDENTITY_FORWARD: IdentityForward = Object.freeze({
  ...FORWARD_DEFAULTS,
  strip: new FrozenSet(Object.values(FORWARD_DEFAULTS)),
});

/** The forwarding rules of a plan (the defaults when it has no authentication section). */
export function forwardOf(plan: { readonly authn?: { readonly forward: IdentityForward } }): IdentityForward {
  return plan.authn?.forward ?? DEFAULT_IDENTITY_FORWARD;
}
