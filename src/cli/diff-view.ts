// What `portcullis diff` compares: a policy turned into sections of named entries (routes, keys by
// id, roles, tiers…) whose fields hold normalised values — durations, rates and sizes from the
// compiled Plan or parsed to numbers, defaults applied — so a reformatted or re-split policy that
// means the same thing compares equal. A value read from `env:`/`file:` shows as its reference,
// and secrets (key hashes, JWT secrets, signing keys, URL passwords) only as changed/unchanged.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseDocument } from 'yaml';
import { FORWARD_DEFAULTS } from '../authn/forward.js';
import { normalizePermission } from '../authz/permissions.js';
import type { Plan } from '../core/plan.js';
import type { LoadedPolicy } from '../policy/load.js';
import type { KeyPath } from '../policy/source-map.js';
import { parseDuration, parseSize } from '../policy/values.js';

/** One compared value: `key` decides equality, `show` is what may be printed (never a secret). */
export interface Shown {
  readonly show: string;
  readonly key: string;
}
/** A value compared as a set and printed as what was added and removed. */
export interface SetValue {
  readonly set: readonly string[];
}
export type Value = Shown | SetValue;
export type Fields = Readonly<Record<string, Value | undefined>>;

export interface Section {
  readonly title: string;
  /** Entries by name, in policy order. A section of one unnamed entry uses the name "". */
  readonly entries: ReadonlyMap<string, Fields>;
  /** Entry order matters (routes: the first match wins), so a change of relative order is a change. */
  readonly ordered?: boolean;
  /** How an absent field reads ("any", "false", the default value). */
  readonly absent?: Readonly<Record<string, string>>;
}

export interface PolicyView {
  readonly hash: string;
  readonly sections: readonly Section[];
}

export const isSet = (v: Value): v is SetValue => 'set' in v;
const plain = (s: string): Shown => ({ show: s, key: s });
const digest = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 16);

// ─── value notations, normalised ──────────────────────────────────────────────────────────────────

/** Milliseconds in the largest unit that states them exactly: 30000 → 30s, 1500 → 1500ms. */
export function formatMs(ms: number): string {
  for (const [unit, n] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (ms >= n && ms % n === 0) return `${ms / n}${unit}`;
  }
  return `${ms}ms`;
}

/** Requests per second as the policy writes rates: 10/s, 600/m → 10/s, 90/h stays 90/h. */
export function formatRate(perSecond: number): string {
  const close = (x: number): boolean => Math.abs(x - Math.round(x)) < 1e-9;
  if (close(perSecond)) return `${Math.round(perSecond)}/s`;
  if (close(perSecond * 60)) return `${Math.round(perSecond * 60)}/m`;
  return `${Math.round(perSecond * 3600)}/h`;
}

export function formatSize(bytes: number): string {
  for (const [unit, n] of [
    ['gb', 1_073_741_824],
    ['mb', 1_048_576],
    ['kb', 1_024],
  ] as const) {
    if (bytes >= n && bytes % n === 0) return `${bytes / n}${unit}`;
  }
  return `${bytes}b`;
}

/** A URL with its password masked; the key still tells a password change apart. */
export function redactUrl(url: string): Shown {
  const m = /^([A-Za-z][A-Za-z0-9+.-]*:\/\/)([^@/]*)@/.exec(url);
  if (m === null || !m[2]!.includes(':')) return plain(url);
  const user = m[2]!.slice(0, m[2]!.indexOf(':'));
  return { show: `${m[1]}${user}:***@${url.slice(m[0].length)}`, key: `url:${digest(url)}` };
}

// ─── env:/file: references ───────────────────────────────────────────────────────────────────────

/** Keys whose values are literal even when they look like references (as the loader treats them). */
const LITERAL_KEYS = new Set(['require', 'permissions', 'inherits', '$schema']);

/**
 * Where each policy file wrote `env:NAME` / `file:path`, by file:line:column: the loaded document
 * holds resolved values, so the references are read back from the files as written.
 */
function referenceIndex(loaded: LoadedPolicy): Map<string, string> {
  const index = new Map<string, string>();
  for (const name of loaded.files) {
    let text: string;
    try {
      text = readFileSync(name, 'utf8');
    } catch {
      continue;
    }
    const lines = new LineCounter();
    const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: false });
    const walk = (node: unknown, literal: boolean): void => {
      if (isMap(node)) {
        for (const pair of node.items) {
          if (isPair(pair) && isScalar(pair.key)) walk(pair.value, literal || LITERAL_KEYS.has(String(pair.key.value)));
        }
      } else if (isSeq(node)) {
        for (const item of node.items) walk(item, literal);
      } else if (!literal && isScalar(node) && typeof node.value === 'string' && /^(env|file):/.test(node.value) && node.range) {
        const { line, col } = lines.linePos(node.range[0]);
        index.set(`${name}\u0000${line}:${col}`, node.value);
      }
    };
    walk(doc.contents, false);
  }
  return index;
}

// ─── the view ────────────────────────────────────────────────────────────────────────────────────

class Reader {
  readonly #loaded: LoadedPolicy;
  readonly #refs: Map<string, string>;
  constructor(loaded: LoadedPolicy) {
    this.#loaded = loaded;
    this.#refs = referenceIndex(loaded);
  }

  /** The `env:`/`file:` reference the value at `path` was written as, if any. */
  ref(path: KeyPath): string | undefined {
    if (this.#refs.size === 0) return undefined;
    const p = this.#loaded.sourceMap.position(path);
    return this.#refs.get(`${p.file}\u0000${p.line}:${p.column}`);
  }

  /** A value as written: its reference when it came from env:/file: (a file's contents compared by digest). */
  text(path: KeyPath, value: string | undefined, shown: (v: string) => Shown = plain): Shown | undefined {
    if (value === undefined) return undefined;
    const ref = this.ref(path);
    if (ref === undefined) return shown(value);
    return { show: ref, key: ref.startsWith('file:') ? `${ref}#${digest(value)}` : ref };
  }

  /** A secret: its reference if it has one, else only whether it changed. */
  secret(path: KeyPath, value: string | undefined): Shown | undefined {
    if (value === undefined) return undefined;
    return this.text(path, value, (v) => ({ show: '(secret)', key: `secret:${digest(v)}` }));
  }

  /** A list compared as a set; elements from env:/file: show as their reference. */
  set(path: KeyPath, values: readonly string[] | undefined): SetValue | undefined {
    if (values === undefined || values.length === 0) return undefined;
    return { set: [...new Set(values.map((v, i) => this.text([...path, i], v)!.show))].sort() };
  }
}

const yes = (b: boolean | undefined): Shown | undefined => (b ? plain('true') : undefined);
const num = (n: number | undefined, dflt?: number): Shown | undefined => (n === undefined || n === dflt ? undefined : plain(String(n)));
const ms = (written: string | undefined): Shown | undefined => (written === undefined ? undefined : plain(formatMs(parseDuration(written))));
const setOf = (values: Iterable<string>): SetValue | undefined => {
  const list = [...new Set(values)].sort();
  return list.length === 0 ? undefined : { set: list };
};

/** The sections of one policy, ready to compare. */
export function policyView(loaded: LoadedPolicy, plan: Plan): PolicyView {
  const doc = plan.document;
  const r = new Reader(loaded);
  const sections: Section[] = [];
  const effective = (roles: readonly string[] | undefined, permissions: readonly string[] | undefined): SetValue | undefined => {
    const out = new Set<string>((permissions ?? []).map(normalizePermission));
    for (const role of roles ?? []) for (const g of plan.rbac?.roles.get(role)?.keys() ?? []) out.add(g);
    return setOf(out);
  };

  const routes = new Map<string, Fields>();
  for (const route of plan.routes) {
    const at = ['routes', route.index];
    const host = doc.routes?.[route.index]?.match.host;
    const hosts =
      host === undefined
        ? undefined
        : typeof host === 'string'
          ? setOf([r.text([...at, 'match', 'host'], host.toLowerCase())!.show])
          : r.set(
              [...at, 'match', 'host'],
              host.map((h) => h.toLowerCase()),
            );
    const spec = doc.routes?.[route.index];
    const authenticate = route.public ? [] : (spec?.authenticate ?? ['apiKey', 'jwt']);
    const limits = plan.limits?.routes.get(route.index) ?? [];
    const maxBodySize = plan.maxBodySize[route.index];
    const audit = plan.auditModes[route.index] ?? 'all';
    routes.set(route.name, {
      methods: route.methods ? setOf(route.methods) : undefined,
      hosts,
      path: r.text([...at, 'match', 'path'], route.matcher.pattern),
      public: yes(route.public),
      upstream: r.text([...at, 'upstream'], route.upstream),
      require: setOf(spec?.require ?? []),
      tenantParam: r.text([...at, 'tenantParam'], spec?.tenantParam),
      authenticate: authenticate.length > 0 ? plain(authenticate.join(', ')) : undefined,
      ipAllow: r.set([...at, 'ipAllow'], spec?.ipAllow ?? []),
      ipDeny: r.set([...at, 'ipDeny'], spec?.ipDeny ?? []),
      limits: limits.length > 0 ? plain(limits.map((l) => `by ${l.by} ${formatRate(l.ratePerMs * 1000)} burst ${l.burst}${l.cost !== 1 ? ` cost ${l.cost}` : ''}`).join('; ')) : undefined,
      maxBodySize: maxBodySize === undefined ? undefined : plain(formatSize(maxBodySize)),
      shadow: yes(spec?.shadow === true),
      audit: audit === 'all' ? undefined : plain(audit),
    });
  }
  sections.push({ title: 'routes', entries: routes, ordered: true, absent: { methods: 'any', hosts: 'any', public: 'false', shadow: 'false', audit: 'all' } });

  const upstreams = new Map<string, Fields>();
  for (const [name, u] of plan.upstreams) {
    const spec = doc.upstreams?.[name];
    const at = ['upstreams', name];
    const targets = spec?.targets !== undefined ? spec.targets.map((t, i) => r.text([...at, 'targets', i], t, redactUrl)!.show) : [r.text([...at, 'url'], spec?.url, redactUrl)?.show ?? ''];
    const b = u.breaker;
    upstreams.set(name, {
      targets: { set: [...targets].sort() },
      'timeouts.connect': plain(formatMs(u.connectTimeoutMs)),
      'timeouts.response': plain(formatMs(u.responseTimeoutMs)),
      connections: plain(String(u.connections)),
      retries: plain(String(u.retries)),
      breaker: b === undefined ? undefined : plain('on'),
      'breaker.consecutiveFailures': num(b?.consecutiveFailures),
      'breaker.errorRate': b?.errorRate === undefined ? undefined : plain(`${Number((b.errorRate * 100).toFixed(4))}%`),
      'breaker.minRequests': num(b?.minRequests),
      'breaker.window': b === undefined ? undefined : plain(formatMs(b.windowMs)),
      'breaker.cooldown': b === undefined ? undefined : plain(formatMs(b.cooldownMs)),
      'breaker.halfOpenProbes': num(b?.halfOpenProbes),
      'breaker.failOn': b === undefined ? undefined : setOf([...b.failOn].map(String)),
    });
  }
  const noBreaker = Object.fromEntries(['consecutiveFailures', 'errorRate', 'minRequests', 'window', 'cooldown', 'halfOpenProbes', 'failOn'].map((k) => [`breaker.${k}`, '-']));
  sections.push({ title: 'upstreams', entries: upstreams, absent: { breaker: 'off', ...noBreaker } });

  const authn = doc.authentication;
  const fwd = authn?.forward;
  const lockout = plan.authn?.lockout;
  sections.push({
    title: 'authentication',
    entries: new Map([
      [
        '',
        {
          'apiKeys.header': plain((authn?.apiKeys?.header ?? 'x-api-key').toLowerCase()),
          forwardCredentials: yes(authn?.forwardCredentials),
          'forward.subject': r.text(['authentication', 'forward', 'subject'], fwd?.subject ?? FORWARD_DEFAULTS.subject),
          'forward.tenant': r.text(['authentication', 'forward', 'tenant'], fwd?.tenant ?? FORWARD_DEFAULTS.tenant),
          'forward.roles': r.text(['authentication', 'forward', 'roles'], fwd?.roles ?? FORWARD_DEFAULTS.roles),
          'forward.keyId': r.text(['authentication', 'forward', 'keyId'], fwd?.keyId ?? FORWARD_DEFAULTS.keyId),
          'forward.jwt.key': r.secret(['authentication', 'forward', 'jwt', 'key'], fwd?.jwt?.key),
          'forward.jwt.ttl': ms(fwd?.jwt?.ttl),
          'forward.jwt.audience': r.text(['authentication', 'forward', 'jwt', 'audience'], fwd?.jwt?.audience),
          'forward.jwt.header': r.text(['authentication', 'forward', 'jwt', 'header'], fwd?.jwt?.header),
          'lockout.failures': num(lockout?.failures),
          'lockout.window': lockout === undefined ? undefined : plain(formatMs(lockout.windowMs)),
          'lockout.duration': lockout === undefined ? undefined : plain(formatMs(lockout.durationMs)),
        },
      ],
    ]),
    absent: { forwardCredentials: 'false', 'lockout.failures': 'off' },
  });

  const issuers = new Map<string, Fields>();
  (authn?.jwt ?? []).forEach((j, i) => {
    const at = ['authentication', 'jwt', i];
    issuers.set(j.name, {
      issuer: r.text([...at, 'issuer'], j.issuer),
      audience: typeof j.audience === 'string' ? setOf([r.text([...at, 'audience'], j.audience)!.show]) : r.set([...at, 'audience'], j.audience),
      jwksUrl: r.text([...at, 'jwksUrl'], j.jwksUrl, redactUrl),
      publicKey: r.text([...at, 'publicKey'], j.publicKey?.trim(), (v) => ({ show: '(inline key)', key: `key:${digest(v)}` })),
      secret: r.secret([...at, 'secret'], j.secret),
      algorithms: setOf(j.algorithms),
      clockTolerance: ms(j.clockTolerance),
      typ: r.text([...at, 'typ'], j.typ),
      cooldown: ms(j.cooldown),
      cacheMaxAge: ms(j.cacheMaxAge),
      'claims.subject': r.text([...at, 'claims', 'subject'], j.claims?.subject),
      'claims.tenant': r.text([...at, 'claims', 'tenant'], j.claims?.tenant),
      'claims.roles': r.text([...at, 'claims', 'roles'], j.claims?.roles),
      'claims.permissions': r.text([...at, 'claims', 'permissions'], j.claims?.permissions),
    });
  });
  sections.push({ title: 'jwt issuers', entries: issuers, absent: { clockTolerance: 'default', cooldown: 'default', cacheMaxAge: 'default' } });

  const keys = new Map<string, Fields>();
  (authn?.apiKeys?.keys ?? []).forEach((k, i) => {
    const at = ['authentication', 'apiKeys', 'keys', i];
    const expires = k.expires === undefined ? undefined : k.expires instanceof Date ? k.expires : new Date(k.expires);
    keys.set(k.id, {
      tenant: r.text([...at, 'tenant'], k.tenant),
      subject: r.text([...at, 'subject'], k.subject),
      roles: r.set([...at, 'roles'], k.roles),
      permissions: setOf(k.permissions ?? []),
      expires: expires === undefined ? undefined : plain(Number.isNaN(expires.getTime()) ? String(k.expires) : expires.toISOString()),
      disabled: yes(k.disabled),
      hash: r.text([...at, 'hash'], k.hash, (v) => ({ show: '(hash)', key: v })),
      'effective permissions': effective(k.roles, k.permissions),
    });
  });
  sections.push({ title: 'api keys', entries: keys, absent: { expires: 'never', disabled: 'false' } });

  const roles = new Map<string, Fields>();
  for (const [name, spec] of Object.entries(doc.roles ?? {})) {
    roles.set(name, { permissions: setOf(spec.permissions ?? []), inherits: setOf(spec.inherits ?? []), 'effective permissions': effective([name], []) });
  }
  sections.push({ title: 'roles', entries: roles });

  const limits = plan.limits;
  const tiers = new Map<string, Fields>();
  for (const [name, t] of limits?.tiers ?? []) {
    tiers.set(name, {
      rate: t.ratePerMs === undefined ? undefined : plain(formatRate(t.ratePerMs * 1000)),
      burst: t.ratePerMs === undefined ? undefined : plain(String(t.burst)),
      quota: t.quota === undefined ? undefined : plain(`${t.quota.limit}/${t.quota.window}`),
      concurrency: num(t.concurrency),
    });
  }
  sections.push({ title: 'tenant tiers', entries: tiers, absent: { rate: 'none', quota: 'none', concurrency: 'none' } });

  const members = new Map<string, Fields>();
  for (const [tenant, t] of limits?.members ?? []) members.set(tenant, { tier: plain(t.name) });
  if (limits?.defaultTier !== undefined) members.set('(any other tenant)', { tier: plain(limits.defaultTier.name) });
  sections.push({ title: 'tenants', entries: members });

  sections.push({
    title: 'network',
    entries: new Map([['', { trustedProxies: r.set(['trustedProxies'], doc.trustedProxies), ipAllow: r.set(['ipAllow'], doc.ipAllow), ipDeny: r.set(['ipDeny'], doc.ipDeny) }]]),
  });

  const store = doc.store;
  sections.push({
    title: 'store',
    entries: new Map([
      [
        '',
        {
          url: store?.url === undefined || store.url === '' ? undefined : r.text(['store', 'url'], store.url, redactUrl),
          onError: plain(store?.onError ?? 'allow'),
          prefix: r.text(['store', 'prefix'], store?.prefix ?? 'portcullis:'),
          timeout: plain(formatMs(store?.timeout === undefined ? 50 : parseDuration(store.timeout))),
        },
      ],
    ]),
    absent: { url: 'in memory (this instance only)' },
  });

  const audit = doc.audit;
  const sinks = (audit?.sinks ?? []).map((s, i): Shown => {
    const at = ['audit', 'sinks', i];
    if ('stdout' in s) return plain('stdout');
    if ('file' in s) {
      const f = s.file;
      const where = r.text([...at, 'file', 'path'], f.path)!;
      const opts = [f.rotate ? `rotate ${formatSize(parseSize(f.rotate))}` : '', f.retain ? `retain ${formatMs(parseDuration(f.retain))}` : '', `fsync ${f.fsync ?? 'batch'}`].filter((o) => o !== '');
      return { show: `file ${where.show} (${opts.join(', ')})`, key: `file ${where.key} (${opts.join(', ')})` };
    }
    if ('redisStream' in s) {
      const url = s.redisStream.url === undefined ? { show: 'store.url', key: 'store.url' } : r.text([...at, 'redisStream', 'url'], s.redisStream.url, redactUrl)!;
      const tail = `key ${s.redisStream.key}, maxLen ${s.redisStream.maxLen ?? 1_000_000}`;
      return { show: `redisStream ${url.show} (${tail})`, key: `redisStream ${url.key} (${tail})` };
    }
    const w = s.webhook;
    const url = r.text([...at, 'webhook', 'url'], w.url, redactUrl)!;
    const secret = r.secret([...at, 'webhook', 'secret'], w.secret);
    const tail = `batch ${w.batch ?? 500}`;
    return { show: `webhook ${url.show} (${tail}${secret ? `, secret ${secret.show}` : ''})`, key: `webhook ${url.key} (${tail}, ${secret?.key ?? 'no secret'})` };
  });
  sections.push({
    title: 'audit',
    entries: new Map([
      [
        '',
        audit === undefined
          ? {}
          : {
              audit: plain('on'),
              chain: yes(audit.chain),
              sinks: sinks.length === 0 ? undefined : { show: sinks.map((s) => s.show).join('; '), key: sinks.map((s) => s.key).join('; ') },
              spool: r.text(['audit', 'spool'], audit.spool),
              redact: setOf((audit.redact ?? []).map((x) => x.toLowerCase())),
            },
      ],
    ]),
    absent: { audit: 'off', chain: 'false', sinks: 'none', spool: 'default' },
  });

  return { hash: plan.hash, sections };
}

/** What /admin/policy publishes of a running instance: the hash and each route's match. */
export interface AdminPolicy {
  readonly hash: string;
  readonly routes: readonly { readonly name: string; readonly methods: readonly string[] | null; readonly path: string; readonly public: boolean }[];
}

export function adminView(body: AdminPolicy): PolicyView {
  const routes = new Map<string, Fields>();
  for (const route of body.routes) {
    routes.set(route.name, { methods: route.methods === null ? undefined : setOf(route.methods), path: plain(route.path), public: yes(route.public) });
  }
  return { hash: body.hash, sections: [{ title: 'routes', entries: routes, ordered: true, absent: { methods: 'any', public: 'false' } }] };
}

/** The same view with only the fields /admin/policy publishes, so a local policy compares like for like. */
export function asPublished(view: PolicyView): PolicyView {
  const routes = view.sections.find((s) => s.title === 'routes')!;
  const entries = new Map<string, Fields>();
  for (const [name, f] of routes.entries) entries.set(name, { methods: f.methods, path: f.path, public: f.public });
  return { hash: view.hash, sections: [{ ...routes, entries }] };
}
