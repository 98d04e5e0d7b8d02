// Target selection: round robin over an upstream's targets, skipping targets whose breaker refuses.
// Breakers are long-lived: keyed by upstream name + target origin, they survive Plan swaps and are
// reconfigured in place when the breaker settings change. The Balancers object is the one owner of
// every breaker (admin and metrics read it from here).
import type { Logger } from 'pino';
import type { Plan } from '../core/plan.js';
import type { EventBus } from '../events.js';
import { breakerState, breakerTransitionsTotal, healthChecksTotal, upstreamHealthy } from '../observability/metrics.js';
import type { UpstreamPlan, UpstreamTarget } from '../upstream/compile.js';
import { type BreakerSettings, type BreakerStateName, CircuitBreaker, REFUSED } from './breaker.js';
import { HealthChecker, type HealthHooks, type HealthSnapshot, type HealthTransition } from './health.js';
import type { HealthCheckSettings } from './health-compile.js';

const STATE_VALUE: Record<BreakerStateName, number> = { closed: 0, 'half-open': 1, open: 2 };

/** One target of one upstream, with its breaker (undefined when the upstream has none). */
export interface TargetHandle {
  readonly upstream: string;
  readonly origin: string;
  target: UpstreamTarget;
  breaker: CircuitBreaker | undefined;
  /** Active health checker (undefined when the upstream has no healthCheck: always in rotation). */
  health: HealthChecker | undefined;
  /** What the running checker was built from; a reload with the same settings keeps it. */
  healthKey: string;
}

/**
 * One admitted request's claim on a target. Exactly one of settle/fail/release takes effect, so
 * the forwarder and the server's finish/abort handlers may all call it safely.
 */
export class Admission {
  readonly handle: TargetHandle;
  readonly #generation: number;
  readonly #balancers: Balancers;
  #done = false;

  constructor(handle: TargetHandle, generation: number, balancers: Balancers) {
    this.handle = handle;
    this.#generation = generation;
    this.#balancers = balancers;
  }

  /** Another target for a retry (this one is tried last). */
  next(up: UpstreamPlan): Admission | AllOpen {
    return this.#balancers.pick(up, this.handle);
  }

  /** The upstream answered with `status`. */
  settle(status: number): void {
    if (this.#done) return;
    this.#done = true;
    const b = this.handle.breaker;
    if (b !== undefined) b.record(this.#generation, b.isFailureStatus(status));
  }

  /** Connect error, reset or timeout. */
  fail(): void {
    if (this.#done) return;
    this.#done = true;
    this.handle.breaker?.record(this.#generation, true);
  }

  /** Ended without an outcome (client abort before the upstream answered). */
  release(): void {
    if (this.#done) return;
    this.#done = true;
    this.handle.breaker?.release(this.#generation);
  }
}

/** The answer when every target refused: how long until one would admit a probe. */
export interface AllOpen {
  readonly retryAfterMs: number;
  /** Every target is out of rotation by its health checks (not by its breaker). */
  readonly unhealthy?: boolean;
}

interface UpstreamEntry {
  source: UpstreamPlan;
  handles: TargetHandle[];
  next: number;
}

export interface BalancerOptions {
  readonly now?: () => number;
  readonly logger?: Pick<Logger, 'warn' | 'info'>;
  readonly bus?: EventBus;
}

export class Balancers {
  readonly #upstreams = new Map<string, UpstreamEntry>();
  readonly #handles = new Map<string, TargetHandle>();
  readonly #opts: BalancerOptions;
  readonly #healthHooks: HealthHooks;

  constructor(opts: BalancerOptions = {}) {
    this.#opts = opts;
    this.#healthHooks = {
      probed: (t, ok) => healthChecksTotal.inc({ upstream: t.upstream, target: t.origin, result: ok ? 'ok' : 'fail' }),
      transitioned: (t) => this.#healthTransitioned(t),
    };
  }

  /**
   * Picks a target for a request to `up`: round robin, skipping targets whose breaker refuses.
   * `avoid` (a retry) is tried last. Returns an Admission, or AllOpen when no target admits.
   */
  pick(up: UpstreamPlan, avoid?: TargetHandle): Admission | AllOpen {
    const entry = this.#entry(up);
    const handles = entry.handles;
    const n = handles.length;
    const start = entry.next;
    entry.next = (start + 1) % n;
    let fallback: TargetHandle | undefined;
    let unhealthy = 0;
    for (let i = 0; i < n; i++) {
      const h = handles[(start + i) % n]!;
      if (h.health !== undefined && !h.health.healthy) {
        unhealthy++;
        continue;
      }
      if (h === avoid && n > 1) {
        fallback = h;
        continue;
      }
      const gen = h.breaker === undefined ? 0 : h.breaker.tryAcquire();
      if (gen !== REFUSED) return new Admission(h, gen, this);
    }
    if (fallback !== undefined) {
      const gen = fallback.breaker === undefined ? 0 : fallback.breaker.tryAcquire();
      if (gen !== REFUSED) return new Admission(fallback, gen, this);
    }
    if (unhealthy === n) return { retryAfterMs: up.healthCheck?.intervalMs ?? 0, unhealthy: true };
    let wait = Infinity;
    for (const h of handles) if (h.health?.healthy !== false) wait = Math.min(wait, h.breaker?.retryAfterMs() ?? 0);
    return { retryAfterMs: wait === Infinity ? 0 : wait };
  }

  /** Brings every upstream of `plan` up to date and forgets targets no upstream has any more. */
  sync(plan: Plan): void {
    for (const up of plan.upstreams.values()) this.#entry(up);
    const live = new Set<string>();
    for (const up of plan.upstreams.values()) for (const t of up.targets) live.add(key(up.name, t.origin));
    for (const name of this.#upstreams.keys()) if (!plan.upstreams.has(name)) this.#upstreams.delete(name);
    for (const [k, h] of this.#handles) {
      if (live.has(k)) continue;
      this.#handles.delete(k);
      if (h.breaker !== undefined) breakerState.remove(h.upstream, h.origin);
      this.#stopHealth(h);
    }
  }

  /** Stops every health checker (shutdown). */
  close(): void {
    for (const h of this.#handles.values()) this.#stopHealth(h);
  }

  /** Every target with active health checks, for /admin/health. */
  healthSnapshot(): HealthSnapshot[] {
    const out: HealthSnapshot[] = [];
    for (const h of this.#handles.values()) if (h.health !== undefined) out.push(h.health.snapshot());
    return out;
  }

  /** Every breaker, for /admin/breakers. */
  snapshot(): { upstream: string; target: string; state: BreakerStateName; retryAfterMs: number }[] {
    const out = [];
    for (const h of this.#handles.values()) {
      if (h.breaker === undefined) continue;
      out.push({ upstream: h.upstream, target: h.origin, state: h.breaker.state, retryAfterMs: h.breaker.retryAfterMs() });
    }
    return out;
  }

  #entry(up: UpstreamPlan): UpstreamEntry {
    let entry = this.#upstreams.get(up.name);
    if (entry !== undefined && entry.source === up) return entry;
    const handles = up.targets.map((t) => this.#handle(up.name, t, up.breaker, up.healthCheck));
    if (entry === undefined) {
      entry = { source: up, handles, next: 0 };
      this.#upstreams.set(up.name, entry);
    } else {
      entry.source = up;
      entry.handles = handles;
      entry.next %= handles.length;
    }
    return entry;
  }

  #handle(upstream: string, target: UpstreamTarget, settings: BreakerSettings | undefined, health: HealthCheckSettings | undefined): TargetHandle {
    const k = key(upstream, target.origin);
    let h = this.#handles.get(k);
    if (h === undefined) {
      h = { upstream, origin: target.origin, target, breaker: undefined, health: undefined, healthKey: '' };
      this.#handles.set(k, h);
    }
    h.target = target;
    this.#syncHealth(h, health);
    if (settings === undefined) {
      if (h.breaker !== undefined) breakerState.remove(upstream, target.origin);
      h.breaker = undefined;
    } else if (h.breaker === undefined) {
      const handle = h;
      h.breaker = new CircuitBreaker(settings, {
        now: this.#opts.now,
        onTransition: (from, to) => {
          this.#transitioned(upstream, target.origin, from, to);
          // Without traffic nobody would ask the breaker after its cooldown: look once, so the
          // half-open state shows on /metrics and /admin/breakers. Reading state applies it.
          if (to === 'open' && this.#opts.now === undefined) setTimeout(() => handle.breaker?.state, handle.breaker!.settings.cooldownMs + 5).unref();
        },
      });
      breakerState.set({ upstream, target: target.origin }, 0);
    } else if (h.breaker.settings !== settings) {
      h.breaker.reconfigure(settings);
    }
    return h;
  }

  #syncHealth(h: TargetHandle, settings: HealthCheckSettings | undefined): void {
    if (settings === undefined) {
      this.#stopHealth(h);
      return;
    }
    const k = `${h.target.basePath}\n${JSON.stringify(settings)}`;
    if (h.health !== undefined && h.healthKey === k) return;
    // A changed check starts over from the target's current state: a reload neither hides a dead
    // target nor takes a live one out.
    const wasHealthy = h.health?.healthy ?? true;
    h.health?.stop();
    h.healthKey = k;
    h.health = new HealthChecker({ upstream: h.upstream, origin: h.origin, basePath: h.target.basePath }, settings, this.#healthHooks, wasHealthy);
    upstreamHealthy.set({ upstream: h.upstream, target: h.origin }, wasHealthy ? 1 : 0);
  }

  #stopHealth(h: TargetHandle): void {
    if (h.health === undefined) return;
    h.health.stop();
    h.health = undefined;
    h.healthKey = '';
    upstreamHealthy.remove(h.upstream, h.origin);
  }

  #healthTransitioned(t: HealthTransition): void {
    upstreamHealthy.set({ upstream: t.upstream, target: t.target }, t.healthy ? 1 : 0);
    const from = t.healthy ? 'unhealthy' : 'healthy';
    const to = t.healthy ? 'healthy' : 'unhealthy';
    const log = { upstream: t.upstream, target: t.target, reason: t.reason };
    if (t.healthy) this.#opts.logger?.info(log, 'upstream target healthy again: back in rotation');
    else this.#opts.logger?.warn(log, 'upstream target failed its health checks: out of rotation');
    this.#opts.bus?.publish({ type: 'upstream.health', upstream: t.upstream, target: t.target, from, to, reason: t.reason });
  }

  #transitioned(upstream: string, target: string, from: BreakerStateName, to: BreakerStateName): void {
    breakerState.set({ upstream, target }, STATE_VALUE[to]);
    breakerTransitionsTotal.inc({ upstream, target, to });
    const log = { upstream, target, from, to };
    if (to === 'open') this.#opts.logger?.warn(log, 'circuit breaker opened');
    else this.#opts.logger?.info(log, `circuit breaker ${to}`);
    this.#opts.bus?.publish({ type: 'breaker.transition', upstream, target, from, to });
  }
}

function key(upstream: string, origin: string): string {
  return `${upstream} ${origin}`;
}

export function isAllOpen(p: Admission | AllOpen): p is AllOpen {
  return !(p instanceof Admission);
}
