// Deep immutability for the Plan: objects and arrays frozen, Maps and Sets replaced by read-only
// versions (Object.freeze alone does not stop Map#set).

class FrozenMap<K, V> extends Map<K, V> {
  constructor(entries: Iterable<readonly [K, V]> = []) {
    super();
    for (const [k, v] of entries) super.set(k, v);
    Object.freeze(this);
  }
  override set(): this {
    throw new TypeError('this map is frozen');
  }
  override delete(): boolean {
    throw new TypeError('this map is frozen');
  }
  override clear(): void {
    throw new TypeError('this map is frozen');
  }
}

class FrozenSet<T> extends Set<T> {
  constructor(values: Iterable<T> = []) {
    super();
    for (const v of values) super.add(v);
    Object.freeze(this);
  }
  override add(): this {
    throw new TypeError('this set is frozen');
  }
  override delete(): boolean {
    throw new TypeError('this set is frozen');
  }
  override clear(): void {
    throw new TypeError('this set is frozen');
  }
}

/**
 * Freezes `value` and everything reachable from it; plain Maps/Sets are swapped for Frozen ones
 * (in place in their parent), so build the Plan from plain objects and freeze it once at the end.
 */
export function deepFreeze<T>(value: T, seen = new WeakSet<object>()): T {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return value;
  const obj = value as object;
  if (seen.has(obj)) return value;
  seen.add(obj);
  if (obj instanceof Map && !(obj instanceof FrozenMap)) {
    return new FrozenMap([...obj].map(([k, v]) => [deepFreeze(k, seen), deepFreeze(v, seen)] as const)) as T;
  }
  if (obj instanceof Set && !(obj instanceof FrozenSet)) return new FrozenSet([...obj].map((v) => deepFreeze(v, seen))) as T;
  if (obj instanceof FrozenMap) {
    for (const [k, v] of obj) {
      deepFreeze(k, seen);
      deepFreeze(v, seen);
    }
  }
  if (obj instanceof FrozenSet) for (const v of obj) deepFreeze(v, seen);
  if (ArrayBuffer.isView(obj)) return value; // typed arrays cannot be frozen; none is reachable from a Plan
  for (const key of Reflect.ownKeys(obj)) {
    const desc = Object.getOwnPropertyDescriptor(obj, key);
    if (desc && 'value' in desc) {
      const frozen = deepFreeze(desc.value as unknown, seen);
      if (frozen !== desc.value && !Object.isFrozen(obj)) (obj as Record<string | symbol, unknown>)[key] = frozen;
    }
  }
  return Object.freeze(value);
}
