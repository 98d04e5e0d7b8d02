// `tenants`, `store` and route `limits` → a frozen LimitsPlan. Rates become tokens per millisecond
// and the RateLimit-Policy header values are built here, once, not per request.

import type { Route } from '../core/route.js';
import { DEFAULT_IPV6_PREFIX } from '../ip-address.js';
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { didYouMean } from '../policy/suggest.js';
import { parseDuration, parseQuota, parseRate, type QuotaWindow } from '../policy/values.js';
import { parseRedisUrl } from '../redis-url.js';
import { DEFAULT_PREFIX } from './keys.js';

declare module '../core/plan.js' {
  interface Plan {
    /** Tenant tiers, route limits and the store settings; undefined when nothing is limited. */
    readonly limits: LimitsPlan | undefined;
  }
}

interface TierPlan {
  readonly name: string;
  /** Undefined: the tier sets no rate. */
  readonly ratePerMs: number | undefined;
  readonly burst: number;
  readonly lease: number;
  readonly quota: { readonly limit: number; readonly window: QuotaWindow } | undefined;
  readonly concurrency: number | undefined;
  /** `"tier";q=…;w=…` */
  readonly policyHeader: string | undefined;
  /** tokens: the spend window (the quota's, else month), its limit and the most one request is charged. */
  readonly tokens: TierTokens | undefined;
}

interface TierTokens {
  readonly window: QuotaWindow;
  /** Undefined: spend is counted, not limited. */
  readonly limit: number | undefined;
  readonly perRequest: number | undefined;
  /** `"tokens";q=…;w=…` when there is a limit. */
  readonly policyHeader: string | undefined;
}

/** Nominal window lengths for RateLimit-Policy's `w` (a calendar month counts as 30 days). */
const WINDOW_SECONDS: Readonly<Record<QuotaWindow, number>> = { minute: 60, hour: 3_600, day: 86_400, month: 2_592_000 };

function tierTokens(spec: { quota?: string | undefined; perRequest?: number | undefined } | undefined): TierTokens | undefined {
  if (spec === undefined) return undefined;
  const q = spec.quota === undefined ? undefined : parseQuota(spec.quota);
  return Object.freeze({
    window: q?.window ?? 'month',
    limit: q?.limit,
    perRequest: spec.perRequest,
    policyHeader: q === undefined ? undefined : `"tokens";q=${q.limit};w=${WINDOW_SECONDS[q.window]}`,
  });
}

export interface RouteBucketPlan {
  readonly index: number;
  readonly by: string;
  /** For `header:<name>`: the lower-case header name. */
  readonly header: string | undefined;
  /** For `ip`: IPv6 clients share a bucket per network of this many leading bits. */
  readonly ipv6Prefix: number;
  readonly ratePerMs: number;
  readonly burst: number;
  readonly cost: number;
  readonly lease: number;
  readonly policyName: string;
  readonly policyHeader: string;
}

export interface LimitsPlan {
  readonly storeUrl: string | undefined;
  readonly onError: 'allow' | 'deny';
  readonly prefix: string;
  readonly timeoutMs: number;
  readonly tiers: ReadonlyMap<string, TierPlan>;
  /** Tier of a tenant not listed in members (undefined: such tenants have no tier limits). */
  readonly defaultTier: TierPlan | undefined;
  readonly members: ReadonlyMap<string, TierPlan>;
  /** By route index; only routes with limits. */
  readonly routes: ReadonlyMap<number, readonly RouteBucketPlan[]>;
  /** A concurrency slot its replica stopped renewing (the replica died) expires after this. */
  readonly slotTtlMs: number;
}

/** store.slotTtl: a held slot is renewed every third of it, so a replica's death frees its slots within it. */
const DEFAULT_SLOT_TTL_MS = 30_000;
const MIN_SLOT_TTL_MS = 1_000;

/**
 * Tokens one store call may take for local spending (leased mode): 10 ms worth of the rate, at most
 * a tenth of the burst and 1000. Below 10 the bucket is exact (every request asks the store).
 */
function leaseFor(ratePerSecond: number, burst: number): number {
  const lease = Math.min(Math.floor(ratePerSecond / 100), Math.floor(burst / 10), 1000);
  return lease >= 10 ? lease : 1;
}

const policyHeader = (name: string, burst: number, ratePerMs: number): string => `"${name}";q=${burst};w=${Math.max(1, Math.ceil(burst / ratePerMs / 1000))}`;

export function compileLimits(doc: PolicyDocument, cx: CompileContext, routes: readonly Route[]): LimitsPlan | undefined {
  const tiers = new Map<string, TierPlan>();
  const spec = doc.tenants;
  for (const [name, t] of Object.entries(spec?.tiers ?? {})) {
    const rate = t.rate === undefined ? undefined : parseRate(t.rate);
    const burst = t.burst ?? (rate === undefined ? 0 : Math.max(1, Math.ceil(rate)));
    if (t.burst !== undefined && rate === undefined) cx.error(['tenants', 'tiers', name, 'burst'], 'burst needs a rate');
    const ratePerMs = rate === undefined ? undefined : rate / 1000;
    tiers.set(
      name,
      Object.freeze({
        name,
        ratePerMs,
        burst,
        lease: rate === undefined ? 1 : leaseFor(rate, burst),
        quota: t.quota === undefined ? undefined : Object.freeze(parseQuota(t.quota)),
        concurrency: t.concurrency,
        policyHeader: ratePerMs === undefined ? undefined : policyHeader('tier', burst, ratePerMs),
        tokens: tierTokens(t.tokens),
      }),
    );
  }
  const tierRef = (name: string, at: (string | number)[]): TierPlan | undefined => {
    const t = tiers.get(name);
    if (t === undefined) cx.error(at, `unknown tier "${name}"${didYouMean(name, tiers.keys())}`);
    return t;
  };
  const defaultTier = spec?.default === undefined ? undefined : tierRef(spec.default, ['tenants', 'default']);
  const members = new Map<string, TierPlan>();
  for (const [tenant, tier] of Object.entries(spec?.members ?? {})) {
    const t = tierRef(tier, ['tenants', 'members', tenant]);
    if (t !== undefined) members.set(tenant, t);
  }

  const routeLimits = new Map<number, readonly RouteBucketPlan[]>();
  for (const r of routes) {
    const specs = doc.routes?.[r.index]?.limits ?? [];
    if (specs.length === 0) continue;
    routeLimits.set(
      r.index,
      Object.freeze(
        specs.map((spec, i) => {
          const ratePerSecond = parseRate(spec.rate);
          const l = { by: spec.by, ratePerSecond, burst: spec.burst ?? Math.max(1, Math.ceil(ratePerSecond)), cost: spec.cost ?? 1 };
          if (spec.ipv6Prefix !== undefined && l.by !== 'ip') cx.error(['routes', r.index, 'limits', i, 'ipv6Prefix'], `ipv6Prefix applies only to by: ip (this bucket is by: ${l.by})`);
          const ratePerMs = l.ratePerSecond / 1000;
          const policyName = `${r.name}.${l.by.replace(/[^A-Za-z0-9_.-]/g, '-')}`;
          return Object.freeze({
            index: i,
            by: l.by,
            header: l.by.startsWith('header:') ? l.by.slice(7).toLowerCase() : undefined,
            ipv6Prefix: spec.ipv6Prefix ?? DEFAULT_IPV6_PREFIX,
            ratePerMs,
            burst: l.burst,
            cost: l.cost,
            lease: l.cost === 1 ? leaseFor(l.ratePerSecond, l.burst) : l.cost,
            policyName,
            policyHeader: policyHeader(policyName, l.burst, ratePerMs),
          });
        }),
      ),
    );
  }
  if (tiers.size === 0 && routeLimits.size === 0 && doc.store === undefined) return undefined;
  const storeUrl = doc.store?.url === '' ? undefined : doc.store?.url;
  if (storeUrl !== undefined) {
    const target = parseRedisUrl(storeUrl);
    if ('problem' in target) cx.error(['store', 'url'], target.problem);
  }
  const slotTtlMs = doc.store?.slotTtl === undefined ? DEFAULT_SLOT_TTL_MS : parseDuration(doc.store.slotTtl);
  if (slotTtlMs < MIN_SLOT_TTL_MS) cx.error(['store', 'slotTtl'], `slotTtl must be at least ${MIN_SLOT_TTL_MS / 1000}s (slots are renewed every third of it)`);
  return Object.freeze({
    storeUrl,
    onError: doc.store?.onError ?? 'allow',
    prefix: doc.store?.prefix ?? DEFAULT_PREFIX,
    timeoutMs: doc.store?.timeout === undefined ? 50 : parseDuration(doc.store.timeout),
    tiers,
    defaultTier,
    members,
    routes: routeLimits,
    slotTtlMs,
  });
}
