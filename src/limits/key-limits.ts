// An API key's `limits` (static keys in the policy, dynamic ones in the store) compiled once per
// key into what the limits stage adds to the request's one store call.
import type { KeyLimits } from '../core/principal.js';
import { parseQuota, parseRate } from '../policy/values.js';

export interface KeyLimitsSpec {
  readonly rate?: string | undefined;
  readonly burst?: number | undefined;
  readonly quota?: string | undefined;
}

/** Undefined when the spec limits nothing. Notation errors are the schema's to report. */
export function compileKeyLimits(spec: KeyLimitsSpec | undefined): KeyLimits | undefined {
  if (spec === undefined || (spec.rate === undefined && spec.quota === undefined)) return undefined;
  const rate = spec.rate === undefined ? undefined : parseRate(spec.rate);
  const burst = spec.burst ?? (rate === undefined ? 0 : Math.max(1, Math.ceil(rate)));
  const ratePerMs = rate === undefined ? undefined : rate / 1000;
  return Object.freeze({
    ratePerMs,
    burst,
    quota: spec.quota === undefined ? undefined : Object.freeze(parseQuota(spec.quota)),
    policyHeader: ratePerMs === undefined ? undefined : `"key";q=${burst};w=${Math.max(1, Math.ceil(burst / ratePerMs / 1000))}`,
  });
}
