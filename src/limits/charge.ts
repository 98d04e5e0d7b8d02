// Charging metered usage: once a response has ended, what its upstream reported is added to the
// tenant's token spend in the store. Never on a request's latency: the store write is not waited
// for, and a failed one is counted and logged, not retried (the audit record keeps the tokens).
import type { Logger } from 'pino';
import type { Plan } from '../core/plan.js';
import { storeErrorsTotal } from '../observability/metrics.js';
import { DEFAULT_PREFIX, tenantTag, tokenDaysKey, tokenSpendKey } from './keys.js';
import type { StoreHolder } from './store.js';

export class TokenCharger {
  readonly #holder: StoreHolder;
  readonly #logger: Logger | undefined;
  #failing = false;

  constructor(holder: StoreHolder, logger?: Logger) {
    this.#holder = holder;
    this.#logger = logger;
  }

  /**
   * Charges `reported` tokens to `tenant` and returns what was charged: capped at the tier's
   * tokens.perRequest. Without a tenant there is no spend to add to, and 0 costs no store call.
   */
  charge(plan: Plan, tenant: string | undefined, reported: number): number {
    const limits = plan.limits;
    const tier = tenant === undefined || limits === undefined ? undefined : (limits.members.get(tenant) ?? limits.defaultTier);
    const perRequest = tier?.tokens?.perRequest;
    const tokens = perRequest !== undefined && reported > perRequest ? perRequest : reported;
    if (tokens <= 0 || tenant === undefined) return tokens;
    const tag = tenantTag(limits?.prefix ?? DEFAULT_PREFIX, tenant);
    this.#holder.store.charge({ key: tokenSpendKey(tag), daysKey: tokenDaysKey(tag), window: tier?.tokens?.window ?? 'month', tokens }).then(this.#charged, this.#failed);
    return tokens;
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
