// PLACEHOLDER with the agreed shape of the decision core; replaced by the real one on merge.
import type { ReasonCode } from '../core/reasons.js';

export type DecisionDoor = 'envoy-grpc' | 'envoy-http' | 'forward-auth' | 'nginx';

export interface DecisionInput {
  readonly door: DecisionDoor;
  readonly method: string;
  readonly target: string;
  readonly host: string;
  readonly rawHeaders: readonly string[];
  readonly peer: string;
  readonly clientAddress?: string | undefined;
}

export interface DecisionResult {
  readonly allowed: boolean;
  readonly status: number;
  readonly code: ReasonCode | undefined;
  readonly upstreamHeaders: [string, string][];
  readonly removeHeaders: string[];
  readonly responseHeaders: [string, string][];
  readonly body: string;
  readonly metadata: { readonly subject?: string; readonly tenant?: string; readonly route?: string };
}

export class DecisionService {
  decide(_input: DecisionInput): DecisionResult | Promise<DecisionResult> {
    throw new Error('placeholder');
  }
}
