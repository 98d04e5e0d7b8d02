// Roles → grants. Inheritance is expanded once, at compile time (see compile.ts); at request time a
// principal's roles plus direct permissions become one GrantSet, built the first time that
// combination is seen and then reused: a static key's principal object hits a WeakMap, any other
// principal costs one joined-string Map get (bounded, oldest evicted first).
import type { Principal } from '../core/principal.js';
import { type GrantSet, normalizePermission } from './permissions.js';

/** Distinct role/permission combinations remembered; far above what a real policy produces. */
const GRANT_CACHE_MAX = 10_000;
const EMPTY: GrantSet = Object.freeze({ has: new Set<string>(), origin: new Map<string, string>() });

export class GrantResolver {
  /** role → its expanded grants (grant → role that declares it). */
  readonly #roles: ReadonlyMap<string, ReadonlyMap<string, string>>;
  readonly #byPrincipal = new WeakMap<Principal, GrantSet>();
  readonly #byKey = new Map<string, GrantSet>();
  readonly #max: number;

  constructor(roles: ReadonlyMap<string, ReadonlyMap<string, string>>, max = GRANT_CACHE_MAX) {
    this.#roles = roles;
    this.#max = max;
  }

  isRole(name: string): boolean {
    return this.#roles.has(name);
  }

  grantsOf(p: Principal): GrantSet {
    const known = this.#byPrincipal.get(p);
    if (known !== undefined) return known;
    const set = this.grantsFor(p.roles, p.permissions);
    this.#byPrincipal.set(p, set);
    return set;
  }

  grantsFor(roles: readonly string[], permissions: readonly string[]): GrantSet {
    if (roles.length === 0 && permissions.length === 0) return EMPTY;
    const key = permissions.length === 0 ? roles.join('\n') : `${roles.join('\n')}\0${permissions.join('\n')}`;
    const hit = this.#byKey.get(key);
    if (hit !== undefined) return hit;
    const built = this.#build(roles, permissions);
    if (this.#byKey.size >= this.#max) this.#byKey.delete(this.#byKey.keys().next().value as string);
    this.#byKey.set(key, built);
    return built;
  }

  /** Number of cached combinations (tests). */
  get cached(): number {
    return this.#byKey.size;
  }

  #build(roles: readonly string[], permissions: readonly string[]): GrantSet {
    const origin = new Map<string, string>();
    // Roles a credential names but the policy does not declare grant nothing (validation warns).
    for (const r of roles) for (const [grant, from] of this.#roles.get(r) ?? []) if (!origin.has(grant)) origin.set(grant, from);
    for (const p of permissions) {
      const g = normalizePermission(p);
      if (!origin.has(g)) origin.set(g, 'direct');
    }
    return Object.freeze({ has: new Set(origin.keys()), origin });
  }
}
