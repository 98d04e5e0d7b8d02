// `upstreams.<name>.healthCheck` → HealthCheckSettings. Absent means no active checks.
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import type { KeyPath } from '../policy/source-map.js';
import { parseDuration } from '../policy/values.js';

type HealthCheckSpec = NonNullable<NonNullable<PolicyDocument['upstreams']>[string]['healthCheck']>;

export interface HealthCheckSettings {
  /** Probed with GET, after the target's basePath. */
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly healthyAfter: number;
  readonly unhealthyAfter: number;
}

const DEFAULTS = Object.freeze({ intervalMs: 10_000, timeoutMs: 2_000, healthyAfter: 2, unhealthyAfter: 3 });

export function compileHealthCheck(spec: HealthCheckSpec | undefined, at: KeyPath, cx: CompileContext): HealthCheckSettings | undefined {
  if (spec === undefined) return undefined;
  const intervalMs = spec.interval !== undefined ? parseDuration(spec.interval) : DEFAULTS.intervalMs;
  const timeoutMs = spec.timeout !== undefined ? parseDuration(spec.timeout) : Math.min(DEFAULTS.timeoutMs, intervalMs);
  // Below this, probes would be a load of their own on the upstream.
  if (intervalMs < 100) cx.error([...at, 'interval'], 'the interval must be at least 100ms');
  if (timeoutMs <= 0) cx.error([...at, 'timeout'], 'the timeout must be positive');
  else if (timeoutMs > intervalMs) cx.error([...at, 'timeout'], `the timeout (${spec.timeout}) must not be longer than the interval (${spec.interval ?? '10s'})`);
  if (spec.path.includes('#') || /\s/.test(spec.path)) cx.error([...at, 'path'], 'a health check path cannot hold a fragment or whitespace');
  return {
    path: spec.path,
    intervalMs,
    timeoutMs,
    healthyAfter: spec.healthyAfter ?? DEFAULTS.healthyAfter,
    unhealthyAfter: spec.unhealthyAfter ?? DEFAULTS.unhealthyAfter,
  };
}
