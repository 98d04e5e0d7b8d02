// The part of a policy file the schema accepts, so that one run also reports the semantic errors
// of everything that is fine. Each part an error was already reported for (a refused value, an
// unresolved env:/file:) is left out and the schema runs again, until what is left passes. A list
// item left out does not move the items after it: `translate` maps their paths back to where they
// were written, so later diagnostics still point at the right line.
import type { z } from 'zod';
import type { KeyPath } from './source-map.js';

const HOLE = Symbol('left out');

/** Maps whose entries other parts name: an entry of the wrong type stays, empty, so a reference to it still resolves. */
const NAMED_MAPS = new Set(['upstreams', 'roles', 'tenants.tiers']);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Date);

export interface Salvaged<T> {
  readonly data: T;
  /** Validated path → written path; undefined when no list item was left out. */
  readonly translate: ((path: KeyPath) => KeyPath) | undefined;
  /** Every part left out, as written. */
  readonly removed: readonly KeyPath[];
}

function get(tree: unknown, path: KeyPath): unknown {
  let node = tree;
  for (const step of path) {
    if (Array.isArray(node) && typeof step === 'number') node = node[step];
    else if (isObject(node)) node = Object.hasOwn(node, step) ? node[String(step)] : undefined;
    else return undefined;
  }
  return node;
}

function compact(node: unknown): unknown {
  if (Array.isArray(node)) return node.filter((v) => v !== HOLE).map(compact);
  if (isObject(node)) return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, compact(v)]));
  return node;
}

/** A path of the compacted tree → the same node's path in `tree` (with its holes). */
function written(tree: unknown, path: KeyPath): KeyPath {
  const out: (string | number)[] = [];
  let node = tree;
  for (const step of path) {
    if (Array.isArray(node) && typeof step === 'number') {
      let seen = -1;
      let i = 0;
      for (; i < node.length; i++) if (node[i] !== HOLE && ++seen === step) break;
      out.push(i);
      node = node[i];
    } else {
      out.push(step);
      node = isObject(node) ? node[String(step)] : undefined;
    }
  }
  return out;
}

/**
 * `value` without the parts at `leaveOut` and without every part the schema refuses. Undefined
 * when nothing usable is left (the document itself is refused). `force` sets top-level values
 * whose only valid form is known (version: 1) instead of losing the whole document over them.
 */
export function salvage<T>(value: unknown, schema: z.ZodType<T>, leaveOut: readonly KeyPath[], force: Json = {}): Salvaged<T> | undefined {
  if (!isObject(value)) return undefined;
  const work = { ...(structuredClone(value) as Json), ...force };
  const removed: KeyPath[] = [];
  let holes = false;

  /** The node an error at `path` takes out: the node, or its nearest present ancestor (a missing required key takes its parent). */
  const target = (path: KeyPath): KeyPath => {
    let p = path;
    while (p.length > 0 && get(work, p) === undefined) p = p.slice(0, -1);
    return p;
  };
  /** Leaves out `p`, unless it (or an ancestor) already went; false when there was nothing to do. */
  const leave = (p: KeyPath): boolean => {
    for (let i = 1; i <= p.length; i++) {
      const v = get(work, p.slice(0, i));
      if (v === undefined || v === HOLE) return false;
    }
    const current = get(work, p);
    const parent = get(work, p.slice(0, -1));
    const last = p[p.length - 1]!;
    if (Array.isArray(parent)) {
      parent[last as number] = HOLE;
      holes = true;
    } else if (isObject(parent)) {
      if (NAMED_MAPS.has(p.slice(0, -1).join('.')) && !isObject(current)) parent[String(last)] = {};
      else delete parent[String(last)];
    }
    removed.push(p);
    return true;
  };

  for (const p of leaveOut.map(target)) if (p.length > 0) leave(p);
  for (;;) {
    const parsed = schema.safeParse(compact(work));
    if (parsed.success) {
      const final = work;
      return { data: parsed.data, translate: holes ? (p) => written(final, p) : undefined, removed };
    }
    // Targets first, removals after: a removal shifts the compacted positions the issues speak of.
    const targets: KeyPath[] = [];
    for (const issue of parsed.error.issues) {
      const path = written(
        work,
        issue.path.filter((p): p is string | number => typeof p !== 'symbol'),
      );
      if (issue.code === 'unrecognized_keys') for (const key of issue.keys) targets.push([...path, key]);
      else targets.push(target(path));
    }
    let progress = false;
    for (const t of targets) {
      if (t.length === 0) return undefined;
      if (leave(t)) progress = true;
    }
    if (!progress) return undefined;
  }
}

/**
 * The part of the document whose checks a left-out `path` may upset: the list item or named entry
 * it lies in (routes[2], upstreams.app), else its top-level section.
 */
export function entryOf(path: KeyPath): KeyPath {
  for (let i = 0; i < path.length; i++) {
    if (typeof path[i] === 'number') return path.slice(0, i + 1);
    const dotted = path.slice(0, i + 1).join('.');
    if ((NAMED_MAPS.has(dotted) || dotted === 'tenants.members') && i + 1 < path.length) return path.slice(0, i + 2);
  }
  return path.slice(0, 1);
}
