// A policy directory is merged into one document. Named lists (routes, JWT issuers, API keys) are
// concatenated in file order; named maps (upstreams, roles, tiers, members) are united; a name
// defined twice, or any other setting made in two files, is an error that names both places.
import type { Diagnostic } from './diagnostics.js';
import type { PolicyDocument } from './schema.js';
import { diagnosticAt, type KeyPath, nodePosition, type SourceMap } from './source-map.js';

/** Lists whose items carry a unique name: path → [name field, what to call it]. */
const NAMED_LISTS: ReadonlyMap<string, readonly [string, string]> = new Map([
  ['routes', ['name', 'route']],
  ['authentication.jwt', ['name', 'jwt issuer']],
  ['authentication.apiKeys.keys', ['id', 'key']],
]);
/** Maps whose keys are names: path → what to call an entry. */
const NAMED_MAPS: ReadonlyMap<string, string> = new Map([
  ['upstreams', 'upstream'],
  ['roles', 'role'],
  ['tenants.tiers', 'tier'],
  ['tenants.members', 'tenant'],
]);
/** Settings every file may repeat (each file is a complete policy document on its own). */
const REPEATABLE = new Set(['version', '$schema']);

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

export function mergeDocuments(docs: readonly PolicyDocument[], map: SourceMap): { document: PolicyDocument; errors: Diagnostic[] } {
  const errors: Diagnostic[] = [];
  const error = (path: KeyPath, message: string): void => {
    const pos = map.position(path);
    errors.push(diagnosticAt(pos, path, message));
  };
  /** An error about a node of file `file` that never made it into the merged document. */
  const errorIn = (file: number, local: KeyPath, path: KeyPath, message: string): void => {
    const pos = nodePosition(map.files[file]!, local, true);
    errors.push(diagnosticAt(pos, path, message));
  };
  const where = (path: KeyPath, key = false): string => {
    const p = key ? map.keyPosition(path) : map.position(path);
    return `${p.file}:${p.line}:${p.column}`;
  };

  const merged: Json = {};
  const into = (target: Json, src: Json, path: KeyPath, file: number, local: KeyPath): void => {
    for (const [key, value] of Object.entries(src)) {
      if (value === undefined) continue;
      const mp = [...path, key];
      const lp = [...local, key];
      const dotted = mp.join('.');
      const existing = target[key];
      if (existing === undefined) {
        target[key] = Array.isArray(value) ? [...value] : isObject(value) ? { ...value } : value;
        map.record(mp, file, lp);
        if (Array.isArray(value))
          value.forEach((_, i) => {
            map.record([...mp, i], file, [...lp, i]);
          });
        if (isObject(value)) for (const k of Object.keys(value)) map.record([...mp, k], file, [...lp, k]);
      } else if (REPEATABLE.has(key) && path.length === 0) {
      } else if (NAMED_LISTS.has(dotted) && Array.isArray(existing) && Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          map.record([...mp, existing.length], file, [...lp, i]);
          existing.push(value[i]);
        }
      } else if (NAMED_MAPS.has(dotted) && isObject(existing) && isObject(value)) {
        for (const [name, entry] of Object.entries(value)) {
          if (name in existing) {
            const first = where([...mp, name], true);
            errorIn(file, [...lp, name], [...mp, name], `duplicate ${NAMED_MAPS.get(dotted)} "${name}" (first defined at ${first})`);
            continue;
          }
          existing[name] = entry;
          map.record([...mp, name], file, [...lp, name]);
        }
      } else if (isObject(existing) && isObject(value) && !NAMED_MAPS.has(dotted)) {
        into(existing, value, mp, file, lp);
      } else {
        const first = where(mp, true);
        errorIn(file, lp, mp, `already set at ${first}; set it in one file only`);
      }
    }
  };
  docs.forEach((doc, file) => {
    into(merged, doc as Json, [], file, []);
  });

  for (const [dotted, [field, noun]] of NAMED_LISTS) {
    const list = dotted.split('.').reduce<unknown>((v, k) => (isObject(v) ? v[k] : undefined), merged);
    if (!Array.isArray(list)) continue;
    const seen = new Map<string, number>();
    const base = dotted.split('.');
    list.forEach((item, i) => {
      const name = isObject(item) ? item[field] : undefined;
      if (typeof name !== 'string') return;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, i);
      else error([...base, i, field], `duplicate ${noun} "${name}" (first defined at ${where([...base, first, field])})`);
    });
  }
  return { document: merged as PolicyDocument, errors };
}
