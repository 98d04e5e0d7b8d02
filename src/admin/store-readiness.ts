// Readiness as the limits store decides it: an instance whose store is unreachable while the
// policy says `store.onError: deny` answers every limited request 503, so it must leave the load
// balancer's rotation rather than take traffic it can only refuse. The store is probed here, on the
// admin listener's schedule (the probes'), never on the request path; and actively (PING), because
// an instance out of rotation gets no requests whose outcome could tell it the store is back.
import type { Cluster, Redis } from 'ioredis';
import type { Plan } from '../core/plan.js';
import type { LimitsPlan } from '../limits/compile.js';
import { hardWaitMs, RedisStore } from '../limits/redis-store.js';
import type { LimitStore } from '../limits/store.js';
import type { Readiness, ReadinessCheck } from './server.js';

const DENIED: Readiness = {
  ready: false,
  reason: 'the limits store (Redis) is not reachable and store.onError is deny: limited requests are answered 503 STORE_UNAVAILABLE until it is back',
};
const ALLOWED: Readiness = {
  ready: true,
  reason: 'the limits store (Redis) is not reachable and store.onError is allow: requests are let through without their limits until it is back',
};

/** Whether any request of this policy asks the store for a decision that onError then makes. */
function decidesByStore(limits: LimitsPlan): boolean {
  return limits.routes.size > 0 || limits.tiers.size > 0;
}

/** Resolves true when Redis answers PING within `timeoutMs`; false at once while disconnected. */
function ping(client: Redis | Cluster, timeoutMs: number): Promise<boolean> {
  // The offline queue would hold a PING until a reconnect: a disconnected client is the answer.
  if (client.status !== 'ready') return Promise.resolve(false);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), timeoutMs);
    timer.unref();
  });
  const answered = client.ping().then(
    () => true,
    () => false,
  );
  return Promise.race([answered, late]).finally(() => clearTimeout(timer));
}

/** The store's part of /readyz, judged against the running policy (`plan` is read per probe). */
export function storeReadiness(store: LimitStore, plan: () => Plan | undefined): ReadinessCheck {
  if (!(store instanceof RedisStore)) return () => Promise.resolve(undefined);
  const client = store.client;
  // Probes that arrive together share one PING.
  let probe: Promise<boolean> | undefined;
  return async () => {
    const limits = plan()?.limits;
    if (limits?.storeUrl === undefined) return undefined;
    probe ??= ping(client, hardWaitMs(limits.timeoutMs)).finally(() => (probe = undefined));
    if (await probe) return undefined;
    return limits.onError === 'deny' && decidesByStore(limits) ? DENIED : ALLOWED;
  };
}
