// The compiled, immutable form of a policy. Built once per (re)load by compile.ts and swapped
// atomically; a request keeps the Plan it started with. Sections are declared by the stage that
// owns them; a section whose feature is not built yet is refused at compile time, never ignored.
import type { Diagnostic } from './diagnostics.js';
import type { PolicyDocument } from './schema.js';
import type { CompiledRoute, Router } from '../routing/route.js';

export interface UpstreamTarget {
  /** Origin, e.g. http://127.0.0.1:3000 */
  readonly origin: string;
  /** Path prefix of the target URL ("" when none), prepended to the forwarded path. */
  readonly basePath: string;
}

export interface UpstreamPlan {
  readonly name: string;
  readonly targets: readonly UpstreamTarget[];
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly connections: number;
  readonly retries: number;
}

export interface Plan {
  /** sha256 of the merged, resolved policy: names a version in logs, audit and /admin/policy. */
  readonly hash: string;
  readonly loadedAt: number;
  readonly files: readonly string[];
  readonly routes: readonly CompiledRoute[];
  readonly router: Router;
  readonly upstreams: ReadonlyMap<string, UpstreamPlan>;
  /** CIDRs whose X-Forwarded-For / X-Request-Id are believed. */
  readonly trustedProxies: readonly string[];
  readonly warnings: readonly Diagnostic[];
  /** The merged document, as validated (secrets resolved from env:/file: are in here: never log it whole). */
  readonly document: PolicyDocument;
}
