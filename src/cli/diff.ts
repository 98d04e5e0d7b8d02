// `portcullis diff OLD NEW` / `portcullis diff --admin URL NEW`: what a policy change does, in a
// reviewer's terms — routes (fields, and moves: the first match wins), keys by id, roles and their
// effective permissions, tiers, upstreams, network lists, store and audit — compared in normal form
// (diff-view.ts), never as text.
import { generateKeyPairSync } from 'node:crypto';
import { fetch } from 'undici';
import { buildPlan } from '../engine/validate.js';
import { type Diagnostic, formatDiagnostic, PolicyError } from '../policy/diagnostics.js';
import { type CliIo, counted, EXIT, parseFlags, UsageError } from './command.js';
import { type AdminPolicy, adminView, asPublished, type Fields, isSet, type PolicyView, policyView, type Section, type Value } from './diff-view.js';

export const usage = `Usage: portcullis diff OLD NEW [--json]
       portcullis diff --admin URL NEW [--json]

Shows what changes from policy OLD to policy NEW (each a policy file or directory) in the terms a
reviewer needs: routes added, removed, changed field by field, and moved (the first matching route
wins, so order matters); API keys by id (tenant, roles, expiry, disabled, effective permissions);
JWT issuers; roles (permissions, inherits and the effective permission set); tenant tiers and
members; upstreams; trustedProxies, ipAllow and ipDeny; authentication settings; store; audit.

Both sides are loaded and compiled as serve would, then compared in normal form, not as text:
30s and 30000ms, 10/s and 600/m, a default written out or left implicit, or a policy reformatted
or split into files differently, are no change.

Secrets are never printed: a value written env:NAME or file:path shows as that reference (a file's
contents only as "changed"); key hashes, JWT secrets and signing keys only as changed; passwords
in URLs as ***. A variable a side reads that is not set is compared by its name.

--admin URL compares against the policy a running instance serves (GET /admin/policy, with
Authorization: Bearer $PORTCULLIS_ADMIN_TOKEN) as OLD. The instance publishes its policy hash and
its routes' names, methods, paths and public flags only: those are compared, and when the hashes
differ while those do not, diff says so without being able to say what changed.

Options:
  --admin URL   OLD is the policy of the instance whose admin listener is URL
  --json        print the changes as JSON on stdout
  -h, --help

Exit codes (as diff(1)):
  0  no changes
  1  changes found (printed on stdout)
  2  trouble: a usage error; an invalid or missing policy (errors as file:line:col on stderr);
     an instance that cannot be reached or refuses the token
`;

// ─── comparing ───────────────────────────────────────────────────────────────────────────────────

export interface FieldChange {
  readonly field: string;
  /** As printed; absent on the side that does not have the field (or the whole entry). */
  readonly old?: string;
  readonly new?: string;
  /** For set fields: what was added and removed. */
  readonly added?: readonly string[];
  readonly removed?: readonly string[];
  /** The value changed but reads the same: a secret, or a file: reference whose file's contents changed. */
  readonly hidden?: true;
}

export interface EntryChange {
  readonly kind: 'added' | 'removed' | 'changed';
  readonly name: string;
  /** 1-based position in an ordered section: NEW's, or OLD's for a removed entry. */
  readonly position?: number | undefined;
  /** The entry's order relative to others in both policies changed. */
  readonly moved?: { readonly from: number; readonly to: number; readonly nowBefore: readonly string[]; readonly nowAfter: readonly string[] } | undefined;
  readonly fields: readonly FieldChange[];
}

export interface SectionChange {
  readonly section: string;
  readonly changes: readonly EntryChange[];
}

const showAbsent = (section: Section, field: string): string => section.absent?.[field] ?? '(none)';
const text = (v: Value): string => (isSet(v) ? v.set.join(', ') : v.show);

function fieldChanges(section: Section, before: Fields | undefined, after: Fields | undefined): FieldChange[] {
  const out: FieldChange[] = [];
  const names = new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})]);
  for (const field of names) {
    const a = before?.[field];
    const b = after?.[field];
    if (a === undefined && b === undefined) continue;
    if (before === undefined) {
      out.push({ field, new: text(b!) });
      continue;
    }
    if (a !== undefined && b !== undefined && isSet(a) && isSet(b)) {
      const added = b.set.filter((x) => !a.set.includes(x));
      const removed = a.set.filter((x) => !b.set.includes(x));
      if (added.length > 0 || removed.length > 0) out.push({ field, added, removed });
      continue;
    }
    // A set against nothing reads as a set only when nothing means empty (not "any", say).
    if (section.absent?.[field] === undefined && ((a === undefined && isSet(b!)) || (b === undefined && isSet(a!)))) {
      out.push({ field, added: b === undefined ? [] : (b as { set: string[] }).set, removed: a === undefined ? [] : (a as { set: string[] }).set });
      continue;
    }
    const key = (v: Value | undefined): string | undefined => (v === undefined ? undefined : isSet(v) ? `set:${v.set.join('\u0000')}` : v.key);
    if (key(a) === key(b)) continue;
    const old = a === undefined ? showAbsent(section, field) : text(a);
    const now = b === undefined ? showAbsent(section, field) : text(b);
    out.push({ field, old, new: now, ...(old === now ? { hidden: true as const } : {}) });
  }
  return out;
}

/** Longest common subsequence of two orders of the same names: the ones that kept their place. */
function kept(a: readonly string[], b: readonly string[]): Set<string> {
  const n = a.length;
  const m = b.length;
  const len: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) len[i]![j] = a[i] === b[j] ? len[i + 1]![j + 1]! + 1 : Math.max(len[i + 1]![j]!, len[i]![j + 1]!);
  const out = new Set<string>();
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (a[i] === b[j]) {
      out.add(a[i]!);
      i++;
      j++;
    } else if (len[i + 1]![j]! >= len[i]![j + 1]!) i++;
    else j++;
  }
  return out;
}

export function comparePolicies(before: PolicyView, after: PolicyView): SectionChange[] {
  const out: SectionChange[] = [];
  for (const s of after.sections) {
    const old = before.sections.find((x) => x.title === s.title);
    if (old === undefined) continue;
    const changes: EntryChange[] = [];
    const oldNames = [...old.entries.keys()];
    const newNames = [...s.entries.keys()];
    const common = newNames.filter((n) => old.entries.has(n));
    const oldCommon = oldNames.filter((n) => s.entries.has(n));
    const stay = s.ordered ? kept(oldCommon, common) : new Set(common);
    for (const [i, name] of newNames.entries()) {
      const a = old.entries.get(name);
      const b = s.entries.get(name)!;
      const position = s.ordered ? i + 1 : undefined;
      if (a === undefined) {
        changes.push({ kind: 'added', name, position, fields: fieldChanges(s, undefined, b) });
        continue;
      }
      const fields = fieldChanges(s, a, b);
      let moved: EntryChange['moved'];
      if (!stay.has(name)) {
        const o = oldCommon.indexOf(name);
        const c = common.indexOf(name);
        const flipped = common.filter((other) => other !== name && oldCommon.indexOf(other) < o !== common.indexOf(other) < c);
        moved = {
          from: oldNames.indexOf(name) + 1,
          to: i + 1,
          nowBefore: flipped.filter((other) => common.indexOf(other) > c),
          nowAfter: flipped.filter((other) => common.indexOf(other) < c),
        };
      }
      if (fields.length > 0 || moved) changes.push({ kind: 'changed', name, position, ...(moved ? { moved } : {}), fields });
    }
    for (const [i, name] of oldNames.entries()) {
      if (!s.entries.has(name)) changes.push({ kind: 'removed', name, position: s.ordered ? i + 1 : undefined, fields: [] });
    }
    if (changes.length > 0) out.push({ section: s.title, changes });
  }
  return out;
}

// ─── printing ────────────────────────────────────────────────────────────────────────────────────

const quoted = (names: readonly string[]): string => names.map((n) => `"${n}"`).join(', ');

function fieldLine(f: FieldChange): string {
  if (f.added !== undefined || f.removed !== undefined) {
    const parts = [...(f.added ?? []).map((x) => `+ ${x}`), ...(f.removed ?? []).map((x) => `- ${x}`)];
    return `${f.field}: ${parts.join(', ')}`;
  }
  if (f.old === undefined) return `${f.field}: ${f.new}`;
  if (f.new === undefined) return `${f.field}: ${f.old}`;
  if (f.hidden) return f.new.startsWith('(') ? `${f.field}: changed ${f.new}` : `${f.field}: ${f.new} (the file's contents changed)`;
  return `${f.field}: ${f.old} → ${f.new}`;
}

export function formatChanges(sections: readonly SectionChange[]): string {
  const lines: string[] = [];
  for (const s of sections) {
    lines.push(`${s.section}:`);
    for (const c of s.changes) {
      if (c.name === '') {
        for (const f of c.fields) lines.push(`  ${fieldLine(f)}`);
        continue;
      }
      const where = c.position === undefined ? '' : c.kind === 'removed' ? ` (was position ${c.position})` : c.kind === 'added' ? ` (position ${c.position})` : '';
      lines.push(`  ${c.kind === 'added' ? '+' : c.kind === 'removed' ? '-' : '~'} ${c.name}${where}`);
      if (c.moved) {
        const order = [c.moved.nowBefore.length > 0 ? `now tried before ${quoted(c.moved.nowBefore)}` : '', c.moved.nowAfter.length > 0 ? `now tried after ${quoted(c.moved.nowAfter)}` : '']
          .filter((x) => x !== '')
          .join(' and ');
        lines.push(`      moved: position ${c.moved.from} → ${c.moved.to} (the first match wins: ${order})`);
      }
      for (const f of c.fields) lines.push(`      ${fieldLine(f)}`);
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

function summary(sections: readonly SectionChange[]): string {
  const total = sections.reduce((n, s) => n + s.changes.length, 0);
  if (total === 0) return 'no changes';
  return `${counted(total, 'change')} (${sections.map((s) => `${s.section} ${s.changes.length}`).join(', ')})`;
}

// ─── loading a side ──────────────────────────────────────────────────────────────────────────────

const MISSING_ENV = /^environment variable (\w+) is not set$/;

let keyPair: { publicPem: string; privatePem: string } | undefined;
function placeholderKeys(): { publicPem: string; privatePem: string } {
  if (keyPair === undefined) {
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    keyPair = { publicPem: publicKey.export({ type: 'spki', format: 'pem' }) as string, privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
  }
  return keyPair;
}

/**
 * A stand-in for an unset variable that the key it feeds accepts. diff shows such values by
 * reference (env:NAME), so the stand-in is never printed or compared; it only lets the side load.
 */
function placeholderFor(path: string): string {
  if (/^store\.url$|redisStream\.url$/.test(path)) return 'redis://unset.invalid:6379';
  if (/(\.url|\.jwksUrl|\.targets\[\d+\])$/.test(path)) return 'http://unset.invalid';
  if (/\.publicKey$/.test(path)) return placeholderKeys().publicPem;
  if (/^authentication\.forward\.jwt\.key$/.test(path)) return placeholderKeys().privatePem;
  if (/\.hash$/.test(path)) return `sha256:${'0'.repeat(64)}`;
  if (/(secret|key)$/i.test(path)) return `unset-placeholder-${'x'.repeat(32)}`;
  return 'unset';
}

interface Side {
  readonly view: PolicyView;
  /** Variables that were not set, compared by name. */
  readonly unset: readonly string[];
}

type Loaded = { readonly ok: true; readonly side: Side } | { readonly ok: false; readonly diagnostics: readonly Diagnostic[] };

async function compileSide(path: string, env: NodeJS.ProcessEnv): Promise<Loaded> {
  try {
    const { plan, loaded } = await buildPlan(path, { env });
    return { ok: true, side: { view: policyView(loaded, plan), unset: [] } };
  } catch (err) {
    if (err instanceof PolicyError) return { ok: false, diagnostics: err.diagnostics.filter((d) => d.severity === 'error') };
    throw err;
  }
}

async function loadSide(path: string, env: NodeJS.ProcessEnv): Promise<Loaded> {
  const first = await compileSide(path, env);
  if (first.ok) return first;
  const missing = first.diagnostics.filter((d) => MISSING_ENV.test(d.message));
  if (missing.length === 0 || missing.length !== first.diagnostics.length) return first;
  const fill: Record<string, string> = {};
  for (const d of missing) fill[MISSING_ENV.exec(d.message)![1]!] ??= placeholderFor(d.path);
  const second = await compileSide(path, { ...env, ...fill });
  if (second.ok) return { ok: true, side: { ...second.side, unset: Object.keys(fill).sort() } };
  // A stand-in the key does not accept is not the policy's fault: the variable must be set then.
  const real = second.diagnostics.filter((d) => !missing.some((m) => d.path === m.path || d.path.startsWith(`${m.path}.`)));
  return { ok: false, diagnostics: real.length > 0 ? real : first.diagnostics };
}

async function adminSide(base: string, io: CliIo): Promise<AdminPolicy | string> {
  const token = io.env.PORTCULLIS_ADMIN_TOKEN;
  if (!token) return 'PORTCULLIS_ADMIN_TOKEN is not set (the admin API needs it)';
  let url: string;
  try {
    url = new URL('admin/policy', base.endsWith('/') ? base : `${base}/`).toString();
  } catch {
    return `--admin expects a URL such as http://127.0.0.1:9090 (got "${base}")`;
  }
  let res: Awaited<ReturnType<typeof fetch>>;
  try {
    res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  } catch (err) {
    return `cannot reach ${base}: ${(err as Error).message}`;
  }
  const body = (await res.json().catch(() => undefined)) as (Partial<AdminPolicy> & { detail?: string; title?: string }) | undefined;
  if (res.status !== 200) return `GET /admin/policy answered ${res.status}${body?.detail ? `: ${body.detail}` : body?.title ? `: ${body.title}` : ''}`;
  if (typeof body?.hash !== 'string' || !Array.isArray(body.routes)) return 'GET /admin/policy did not answer with a policy (hash and routes)';
  return body as AdminPolicy;
}

// ─── the command ─────────────────────────────────────────────────────────────────────────────────

export async function run(argv: readonly string[], io: CliIo): Promise<number> {
  const { values, positionals } = parseFlags(argv, { admin: { type: 'string' }, json: { type: 'boolean' } });
  const wanted = values.admin === undefined ? 2 : 1;
  if (positionals.length < wanted) throw new UsageError(values.admin === undefined ? 'OLD and NEW are required' : 'NEW is required');
  if (positionals.length > wanted) throw new UsageError(`unexpected argument "${positionals[wanted]}"${values.admin !== undefined ? ' (with --admin, OLD is the running instance)' : ''}`);

  const sides: { label: string; path: string }[] =
    values.admin === undefined
      ? [
          { label: 'OLD', path: positionals[0]! },
          { label: 'NEW', path: positionals[1]! },
        ]
      : [{ label: 'NEW', path: positionals[0]! }];
  const loaded: Side[] = [];
  let invalid = false;
  for (const { label, path } of sides) {
    const r = await loadSide(path, io.env);
    if (r.ok) {
      loaded.push(r.side);
      continue;
    }
    invalid = true;
    for (const d of r.diagnostics) io.stderr(`${formatDiagnostic(d)}\n`);
    io.stderr(`portcullis diff: ${label} (${path}) is not a valid policy\n`);
  }
  if (invalid) return EXIT.usage;

  const notes: string[] = [];
  const unset = [...new Set(loaded.flatMap((s) => s.unset))].sort();
  if (unset.length > 0) notes.push(`${unset.join(', ')} ${unset.length === 1 ? 'is' : 'are'} not set: compared by name (env:NAME), not by value`);

  let before: PolicyView;
  let after: PolicyView;
  let hashOnly = false;
  if (values.admin !== undefined) {
    const running = await adminSide(values.admin, io);
    if (typeof running === 'string') {
      io.stderr(`portcullis diff: ${running}\n`);
      return EXIT.usage;
    }
    before = adminView(running);
    after = asPublished(loaded[0]!.view);
    notes.push(`compared with the instance at ${values.admin}: it publishes its policy hash and its routes' names, methods, paths and public flags, nothing else`);
    hashOnly = running.hash !== loaded[0]!.view.hash;
  } else {
    before = loaded[0]!.view;
    after = loaded[1]!.view;
  }
  const sections = comparePolicies(before, after);
  // Same published routes, different hash: something else differs (or a value resolves differently here).
  const unexplained = hashOnly && sections.length === 0;
  if (unexplained) {
    notes.push(
      `the policy hashes differ (${before.hash.slice(0, 12)} running, ${after.hash.slice(0, 12)} in NEW) while the routes it publishes do not: another section differs, or an env:/file: value resolves differently here than on the instance${unset.length > 0 ? ' (here, unset variables had stand-ins)' : ''}`,
    );
  }
  const changed = sections.length > 0 || unexplained;

  if (values.json) {
    io.stdout(`${JSON.stringify({ changed, changes: sections.reduce((n, s) => n + s.changes.length, 0), sections, notes }, null, 2)}\n`);
  } else {
    for (const n of notes) io.stderr(`diff: ${n}\n`);
    io.stdout(formatChanges(sections));
    io.stdout(`${unexplained ? 'changes outside the published routes (policy hash differs)' : summary(sections)}\n`);
  }
  return changed ? EXIT.failed : EXIT.ok;
}
