// What the upstream is told about the caller. Every client-sent copy of these headers is removed
// (whatever its case, however often, whatever Connection lists, "_" look-alikes too) and the
// gateway's values are set; unless forwardCredentials is true, the credentials themselves are
// removed too. Each header has one meaning: key id is an API key's id and nothing else, issuer is
// the policy name of the JWT issuer that vouched for the caller, and roles are the effective roles
// (the principal's own, then every role they inherit), so an upstream never re-implements the
// policy's role inheritance.
import type { Principal } from '../core/principal.js';

export interface IdentityForward {
  readonly subject: string;
  readonly tenant: string;
  readonly roles: string;
  readonly keyId: string;
  readonly issuer: string;
  /** Lower-case names a client may never send through: identity headers, and credentials unless forwarded. */
  readonly strip: ReadonlySet<string>;
  /** The effective roles of a principal's roles (inherited ones after its own). */
  readonly effectiveRoles: EffectiveRoles;
}

export const FORWARD_DEFAULTS = Object.freeze({ subject: 'x-auth-subject', tenant: 'x-auth-tenant', roles: 'x-auth-roles', keyId: 'x-auth-key-id', issuer: 'x-auth-issuer' });

/**
 * Role inheritance of one policy, flattened once: role → the roles it inherits, at any depth. A
 * principal's effective roles are computed once per roles array (principals and their frozen roles
 * are long-lived: static keys, cached tokens) and then reused.
 */
export class EffectiveRoles {
  readonly #inherited: ReadonlyMap<string, readonly string[]>;
  readonly #lists = new WeakMap<readonly string[], readonly string[]>();
  readonly #joined = new WeakMap<readonly string[], string>();

  constructor(inherits: Readonly<Record<string, { readonly inherits?: readonly string[] | undefined }>>) {
    const inherited = new Map<string, readonly string[]>();
    for (const name of Object.keys(inherits)) {
      // Breadth first, each role once: a cycle (an error the policy compiler reports) cannot loop here.
      const out: string[] = [];
      const seen = new Set([name]);
      const queue = [...(inherits[name]?.inherits ?? [])];
      while (queue.length > 0) {
        const r = queue.shift()!;
        if (seen.has(r)) continue;
        seen.add(r);
        out.push(r);
        queue.push(...(Object.hasOwn(inherits, r) ? (inherits[r]?.inherits ?? []) : []));
      }
      if (out.length > 0) inherited.set(name, Object.freeze(out));
    }
    this.#inherited = inherited;
  }

  /** The principal's roles in their order, then the roles they inherit (each once). */
  of(roles: readonly string[]): readonly string[] {
    if (this.#inherited.size === 0 || roles.length === 0) return roles;
    let list = this.#lists.get(roles);
    if (list !== undefined) return list;
    const set = new Set(roles);
    for (const r of roles) for (const i of this.#inherited.get(r) ?? []) set.add(i);
    list = set.size === roles.length ? roles : Object.freeze([...set]);
    this.#lists.set(roles, list);
    return list;
  }

  /** The roles header value. */
  header(roles: readonly string[]): string {
    let v = this.#joined.get(roles);
    if (v === undefined) {
      v = this.of(roles).join(',');
      this.#joined.set(roles, v);
    }
    return v;
  }
}

/** The gateway's identity headers for this principal (appended as name/value pairs to `out`). */
export function identityHeaders(forward: IdentityForward, principal: Principal | undefined, out: string[]): void {
  if (principal === undefined) return;
  out.push(forward.subject, principal.subject);
  if (principal.tenant !== undefined) out.push(forward.tenant, principal.tenant);
  if (principal.roles.length > 0) out.push(forward.roles, forward.effectiveRoles.header(principal.roles));
  if (principal.keyId !== undefined) out.push(forward.keyId, principal.keyId);
  if (principal.issuer !== undefined) out.push(forward.issuer, principal.issuer);
}
