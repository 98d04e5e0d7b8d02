// `upstreams.<name>.breaker` → BreakerSettings. An absent section means no breaker. Each trigger
// applies when configured; a section that sets neither trigger gets consecutiveFailures: 5.
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import type { KeyPath } from '../policy/source-map.js';
import { parseDuration, parsePercent } from '../policy/values.js';
import { BREAKER_DEFAULTS, type BreakerSettings } from './breaker.js';

type BreakerSpec = NonNullable<NonNullable<PolicyDocument['upstreams']>[string]['breaker']>;

export function compileBreaker(spec: BreakerSpec | undefined, at: KeyPath, cx: CompileContext): BreakerSettings | undefined {
  if (spec === undefined) return undefined;
  const errorRate = spec.errorRate !== undefined ? parsePercent(spec.errorRate) : undefined;
  if (errorRate === 0) cx.error([...at, 'errorRate'], 'an error rate of 0% would open the breaker on the first request; use a positive percentage');
  const consecutiveFailures = spec.consecutiveFailures ?? (errorRate === undefined ? BREAKER_DEFAULTS.consecutiveFailures : 0);
  const windowMs = spec.window !== undefined ? parseDuration(spec.window) : BREAKER_DEFAULTS.windowMs;
  if (windowMs < 100) cx.error([...at, 'window'], 'the window must be at least 100ms');
  const cooldownMs = spec.cooldown !== undefined ? parseDuration(spec.cooldown) : BREAKER_DEFAULTS.cooldownMs;
  if (cooldownMs <= 0) cx.error([...at, 'cooldown'], 'the cooldown must be positive');
  if (spec.minRequests !== undefined && errorRate === undefined) cx.warn([...at, 'minRequests'], 'minRequests only applies together with errorRate');
  return {
    consecutiveFailures,
    errorRate,
    minRequests: spec.minRequests ?? BREAKER_DEFAULTS.minRequests,
    windowMs,
    cooldownMs,
    halfOpenProbes: spec.halfOpenProbes ?? BREAKER_DEFAULTS.halfOpenProbes,
    failOn: new Set(spec.failOn ?? BREAKER_DEFAULTS.failOn),
  };
}
