// Charging metered usage: once a response has ended, what its upstream reported is added to the
// tenant's token spend in the store. Never on a request's latency: charges are summed per tenant in
// memory and written together every FLUSH_MS (one store call per tenant and flush, not one per
// response), and a failed write is counted and logged, not retried (the audit record keeps the
// tokens). The spend the store sees may lag by FLUSH_MS, which adds to a token quota's overshoot.
import type { Logger } from 'pino';
import type { Plan } from '../core/plan.js';
import { storeErrorsTotal } from '../observability/metrics.js';
import type { QuotaWindow } from '../policy/values.js';
import { DEFAULT_PREFIX, tenantTag, tokenDaysKey, tokenSpendKey } from './keys.js';
import type { StoreHolder } from './store.js';

/** How long charges are summed in memory before they are written. */
const FLUSH_MS = 50;

interface Pending {
  readonly daysKey: string;
  readonly window: QuotaWindow;
  tokens: number;
}

export class TokenCharger {
  readonly #holder: StoreHolder;
  readonly #logger: Logger | undefined;
  /** By spend key: what was charged since the last flush. */
  #pending = new Map<string, Pending>();
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(holder: StoreHolder, logger?: Logger) {
    this.#holder = holder;
    this.#logger = logger;
  }

  /**
   * Charges `reported` tokens to `tenant` and returns what was charged: capped at the tier's
   * tokens.perRequest. Without a tenant there is no spend to add to, and 0 costs nothing.
   */
  charge(plan: Plan, tenant: string | undefined, reported: number): number {
    const limits = plan.limits;
    const tier = tenant === undefined || limits === undefined ? undefined : (limits.members.get(tenant) ?? limits.defaultTier);
    const perRequest = tier?.tokens?.perRequest;
    const tokens = perRequest !== undefined && reported > perRequest ? perRequest : reported;
    if (tokens <= 0 || tenant === undefined) return tokens;
    const tag = tenantTag(limits?.prefix ?? DEFAULT_PREFIX, tenant);
    const key = tokenSpendKey(tag);
    const p = this.#pending.get(key);
    if (p !== undefined) p.tokens += tokens;
    else this.#pending.set(key, { daysKey: tokenDaysKey(tag), window: tier?.tokens?.window ?? 'month', tokens });
    this.#timer ??= setTimeout(this.#flush, FLUSH_MS).unref();
    return tokens;
  }

  /** Writes what is pending now (shutdown calls it before the store closes). */
  async flush(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#write();
  }

  readonly #flush = (): void => void this.#write();

  #write(): Promise<void> {
    this.#timer = undefined;
    const batch = this.#pending;
    if (batch.size === 0) return Promise.resolve();
    this.#pending = new Map();
    const store = this.#holder.store;
    const writes: Promise<void>[] = [];
    for (const [key, p] of batch) writes.push(store.charge({ key, daysKey: p.daysKey, window: p.window, tokens: p.tokens }).then(this.#charged, this.#failed));
    return Promise.all(writes).then(() => undefined);
  }

  readonly #charged = (): void => {
    this.#failing = false;
  };

  readonly #failed = (err: unknown): void => {
    storeErrorsTotal.labels('charge').inc();
    if (this.#failing) return;
    this.#failing = true;
    this.#logger?.warn({ err: err instanceof Error ? err.message : String(err) }, 'charging metered tokens to the store failed; the audit trail still has them');
  };
}
