// One contract, every dynamic key store: the memory store and the Redis store (single server and
// Cluster) must keep, find, list, revoke and announce keys alike.
import { describe, expect, it } from 'vitest';
import type { KeyStore, StoredKey } from '../../src/authn/key-store.js';
import { sha256Hex } from '../../src/sha256.js';

export interface KeyStoreFixture {
  /** Where keys are written. */
  readonly store: KeyStore;
  /** A second replica on the same storage (the memory store: the same object). */
  readonly replica: KeyStore;
}

let n = 0;
const run = `${process.pid}-${Date.now().toString(36)}`;
/** A key of its own per call: the Redis stores share one server with other test files. */
function key(tenant: string, extra: Partial<StoredKey> = {}): StoredKey {
  const i = ++n;
  return {
    id: `k-${run}-${i}`,
    digest: sha256Hex(`${run}-${i}`),
    tenant,
    subject: `svc-${i}`,
    roles: ['viewer'],
    permissions: ['reports:read'],
    created: '2026-12-01T00:00:00.000Z',
    expires: undefined,
    ...extra,
  };
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + 2000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} within 2 s`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function keyStoreContract(name: string, make: () => Promise<KeyStoreFixture>): void {
  describe(`${name} key store contract`, () => {
    it('finds a stored key by its digest, on every replica, exactly as stored', async () => {
      const { store, replica } = await make();
      const k = key(`t-${run}-find`, { expires: '2027-01-01T00:00:00.000Z', roles: ['viewer', 'analyst'] });
      expect(await store.put(k)).toBe('ok');
      expect(await store.byDigest(k.digest)).toEqual(k);
      expect(await replica.byDigest(k.digest)).toEqual(k);
      expect(await store.byDigest('f'.repeat(64))).toBeUndefined();
    });

    it('says which of a list of ids stored keys already have, on every replica', async () => {
      const { store, replica } = await make();
      const a = key(`t-${run}-taken`);
      const b = key(`t-${run}-taken`);
      expect(await store.put(a)).toBe('ok');
      expect(await store.put(b)).toBe('ok');
      const free = `free-${run}`;
      expect(await replica.takenIds([free, b.id, a.id])).toEqual(new Set([a.id, b.id]));
      expect(await store.takenIds([free])).toEqual(new Set());
      expect(await store.takenIds([])).toEqual(new Set());
      await store.remove(a.id);
      expect(await replica.takenIds([a.id, b.id])).toEqual(new Set([b.id]));
    });

    it('refuses a second key with the same id or the same digest, and keeps the first', async () => {
      const { store } = await make();
      const first = key(`t-${run}-dup`);
      expect(await store.put(first)).toBe('ok');
      expect(await store.put({ ...key(first.tenant), id: first.id })).toBe('duplicate');
      const sameDigest = { ...key(first.tenant), digest: first.digest };
      expect(await store.put(sameDigest)).toBe('duplicate');
      expect(await store.byDigest(first.digest)).toEqual(first);
      // The refused key's id was not left behind: it can still be used.
      expect(await store.put({ ...sameDigest, digest: key(first.tenant).digest })).toBe('ok');
    });

    it('lists the keys of one tenant, or of all', async () => {
      const { store } = await make();
      const a = key(`t-${run}-list-a`);
      const b1 = key(`t-${run}-list-b`);
      const b2 = key(`t-${run}-list-b`);
      for (const k of [a, b1, b2]) expect(await store.put(k)).toBe('ok');
      const ofB = await store.list(b1.tenant);
      expect(ofB.map((k) => k.id).sort()).toEqual([b1.id, b2.id].sort());
      const all = (await store.list()).map((k) => k.id);
      for (const k of [a, b1, b2]) expect(all).toContain(k.id);
    });

    it('revokes by id: the key is gone everywhere, its id is free, an unknown id is undefined', async () => {
      const { store, replica } = await make();
      const k = key(`t-${run}-revoke`);
      await store.put(k);
      expect(await replica.remove(k.id)).toEqual(k);
      expect(await store.byDigest(k.digest)).toBeUndefined();
      expect((await store.list(k.tenant)).length).toBe(0);
      expect(await store.remove(k.id)).toBeUndefined();
      expect(await store.put(k)).toBe('ok');
    });

    it('tells every replica the digest of a revoked key, and of a newly created one', async () => {
      const { store, replica } = await make();
      const heard: string[] = [];
      replica.onInvalidate((d) => heard.push(d));
      await new Promise((r) => setTimeout(r, 100)); // a Redis subscriber may still be subscribing
      const k = key(`t-${run}-announce`);
      await store.put(k);
      await until('the creation was not announced', () => heard.includes(k.digest));
      heard.length = 0;
      await store.remove(k.id);
      await until('the revocation was not announced', () => heard.includes(k.digest));
    });

    it('keeps a static key revocation once, for every replica, and announces it to every replica and itself', async () => {
      const { store, replica } = await make();
      const heardHere: string[] = [];
      const heardThere: string[] = [];
      store.onStaticRevoked((d) => heardHere.push(d));
      replica.onStaticRevoked((d) => heardThere.push(d));
      await new Promise((r) => setTimeout(r, 100)); // a Redis subscriber may still be subscribing
      const digest = sha256Hex(`${run}-static`);
      const first = { digest, id: `static-${run}`, revoked: '2026-12-01T00:00:00.000Z' };
      expect(await store.revokeStatic(first)).toEqual(first);
      // Known here before revokeStatic resolved, not only when the announcement comes back.
      expect(heardHere).toContain(digest);
      await until('the revocation was not announced to the other replica', () => heardThere.includes(digest));
      expect((await replica.staticRevocations()).get(digest)).toEqual(first);
      expect(await replica.revokeStatic({ ...first, revoked: '2026-12-02T00:00:00.000Z' })).toEqual(first);
      expect(await store.list()).not.toContainEqual(expect.objectContaining({ id: first.id }));
    });

    it('rewrites a stored key by id (limits and rotation kept), announces it, and never brings back a removed key', async () => {
      const { store, replica } = await make();
      const k = key(`t-${run}-update`, { limits: { rate: '10/s', quota: '100/day' } });
      expect(await store.put(k)).toBe('ok');
      expect(await replica.byId(k.id)).toEqual(k);
      const heard: string[] = [];
      replica.onInvalidate((d) => heard.push(d));
      const retiring = { ...k, expires: '2030-01-01T00:00:00.000Z', rotatedTo: `${k.id}-next` };
      expect(await store.update(retiring)).toBe(true);
      expect(await replica.byDigest(k.digest)).toEqual(retiring);
      await until('the update is announced', () => heard.includes(k.digest));
      await store.remove(k.id);
      expect(await store.update(retiring)).toBe(false);
      expect(await replica.byDigest(k.digest)).toBeUndefined();
      expect(await store.byId(k.id)).toBeUndefined();
    });

    it('keeps the last use of keys by id, on every replica', async () => {
      const { store, replica } = await make();
      const id = `used-${run}-${++n}`;
      await store.touch(new Map([[id, '2026-12-01T10:00:00.000Z']]));
      await replica.touch(new Map([[id, '2026-12-01T10:01:00.000Z']]));
      expect((await store.lastUsed()).get(id)).toBe('2026-12-01T10:01:00.000Z');
      await store.touch(new Map());
    });
  });
}
