// Active health checks: one checker per upstream target that has `healthCheck`. A checker probes
// the target with GET on a fresh connection (a pooled keep-alive connection could outlive a
// listener that is gone), waits for the probe to end before it schedules the next (no overlap, a
// slow target is not piled on), and flips the target's `healthy` flag after `unhealthyAfter`
// failures or `healthyAfter` successes in a row. The balancer reads the flag; nothing on the
// request path waits for a probe. Timers are unref'd and every checker stops on reload or shutdown.
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { HealthCheckSettings } from './health-compile.js';

export interface ProbeTarget {
  readonly upstream: string;
  /** e.g. http://127.0.0.1:3000 */
  readonly origin: string;
  /** Prepended to the check's path ("" when none). */
  readonly basePath: string;
}

export interface HealthTransition {
  readonly upstream: string;
  readonly target: string;
  readonly healthy: boolean;
  /** What the last probe saw: "status 200", "status 503", "timeout after 2000ms", "ECONNREFUSED". */
  readonly reason: string;
}

export interface HealthSnapshot {
  readonly upstream: string;
  readonly target: string;
  readonly healthy: boolean;
  readonly successes: number;
  readonly failures: number;
  /** ISO time of the last finished probe, or null before the first. */
  readonly lastCheck: string | null;
  readonly lastResult: string | null;
}

export interface HealthHooks {
  /** Every finished probe (metrics). */
  probed(target: ProbeTarget, ok: boolean): void;
  /** The target entered or left the rotation. */
  transitioned(t: HealthTransition): void;
}

export class HealthChecker {
  readonly settings: HealthCheckSettings;
  readonly #target: ProbeTarget;
  readonly #hooks: HealthHooks;
  #healthy = true;
  #successes = 0;
  #failures = 0;
  #lastCheck: number | undefined;
  #lastResult: string | undefined;
  #timer: NodeJS.Timeout | undefined;
  #abort: (() => void) | undefined;
  #stopped = false;

  /** Starts probing at once; a new target counts as healthy until its probes say otherwise. */
  constructor(target: ProbeTarget, settings: HealthCheckSettings, hooks: HealthHooks, healthy = true) {
    this.#target = target;
    this.settings = settings;
    this.#hooks = hooks;
    this.#healthy = healthy;
    this.#schedule(0);
  }

  get healthy(): boolean {
    return this.#healthy;
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#abort?.();
  }

  snapshot(): HealthSnapshot {
    return {
      upstream: this.#target.upstream,
      target: this.#target.origin,
      healthy: this.#healthy,
      successes: this.#successes,
      failures: this.#failures,
      lastCheck: this.#lastCheck === undefined ? null : new Date(this.#lastCheck).toISOString(),
      lastResult: this.#lastResult ?? null,
    };
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#probe();
    }, ms);
    this.#timer.unref();
  }

  #probe(): void {
    const s = this.settings;
    const url = new URL(this.#target.basePath + s.path, this.#target.origin);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    let settled = false;
    const done = (ok: boolean, result: string): void => {
      if (settled) return;
      settled = true;
      this.#abort = undefined;
      clearTimeout(timer);
      if (this.#stopped) return;
      this.#record(ok, result);
      this.#schedule(s.intervalMs);
    };
    const req = send(url, { method: 'GET', agent: false, headers: { 'user-agent': 'portcullis-health-check', connection: 'close' } }, (res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      done(status >= 200 && status < 400, `status ${status}`);
    });
    req.on('error', (err: NodeJS.ErrnoException) => done(false, err.code ?? err.message));
    const timer = setTimeout(() => {
      done(false, `timeout after ${s.timeoutMs}ms`);
      req.destroy();
    }, s.timeoutMs);
    timer.unref();
    this.#abort = () => {
      settled = true;
      clearTimeout(timer);
      req.destroy();
    };
    req.end();
  }

  #record(ok: boolean, result: string): void {
    this.#lastCheck = Date.now();
    this.#lastResult = result;
    this.#hooks.probed(this.#target, ok);
    if (ok) {
      this.#successes++;
      this.#failures = 0;
      if (!this.#healthy && this.#successes >= this.settings.healthyAfter) this.#flip(true, result);
    } else {
      this.#failures++;
      this.#successes = 0;
      if (this.#healthy && this.#failures >= this.settings.unhealthyAfter) this.#flip(false, result);
    }
  }

  #flip(healthy: boolean, reason: string): void {
    this.#healthy = healthy;
    this.#hooks.transitioned({ upstream: this.#target.upstream, target: this.#target.origin, healthy, reason });
  }
}
