// An upstream's `usage` section: where it reports what a response consumed. Compiled once; the
// proxy door's meter reads it per response.
import type { PolicyDocument } from '../policy/schema.js';

export interface UsagePlan {
  /** Lower-case name of the header or trailer carrying the token count. */
  readonly header: string;
  /** Which `usage` fields of a JSON or event-stream body count; `off`: the body is not read. */
  readonly json: 'auto' | 'openai' | 'anthropic' | 'off';
}

const DEFAULT_USAGE_HEADER = 'x-usage-tokens';

type UpstreamSpec = NonNullable<PolicyDocument['upstreams']>[string];

export function compileUsage(spec: UpstreamSpec['usage']): UsagePlan | undefined {
  if (spec === undefined) return undefined;
  return Object.freeze({ header: (spec.header ?? DEFAULT_USAGE_HEADER).toLowerCase(), json: spec.json ?? 'auto' });
}
