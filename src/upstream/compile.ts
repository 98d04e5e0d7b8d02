// The `upstreams` section → UpstreamPlan per name (defaults: connect 2s, response 30s,
// 128 connections per target, no retries). A URL's path becomes the target's basePath. Also each
// route's maxBodySize, which bounds what is sent upstream.
import type { CompileContext } from '../policy/compile-context.js';
import type { PolicyDocument } from '../policy/schema.js';
import { parseDuration, parseSize } from '../policy/values.js';
import type { BreakerSettings } from './breaker.js';
import { compileBreaker } from './breaker-compile.js';
import { compileHealthCheck, type HealthCheckSettings } from './health-compile.js';
import { compileUsage, type UsagePlan } from './usage.js';

declare module '../core/plan.js' {
  interface Plan {
    readonly upstreams: ReadonlyMap<string, UpstreamPlan>;
    /** Per route index: `maxBodySize` in bytes; undefined: no limit beyond the server's. */
    readonly maxBodySize: readonly (number | undefined)[];
  }
}

export interface UpstreamTarget {
  /** Origin, e.g. http://127.0.0.1:3000 */
  readonly origin: string;
  /** Path prefix of the target URL ("" when none), prepended to the forwarded path. */
  readonly basePath: string;
}

type UpstreamProtocol = 'http1' | 'h2' | 'h2c';

export interface UpstreamPlan {
  readonly name: string;
  readonly targets: readonly UpstreamTarget[];
  readonly connectTimeoutMs: number;
  readonly responseTimeoutMs: number;
  readonly connections: number;
  readonly retries: number;
  /** HTTP/1.1, HTTP/2 over TLS, or HTTP/2 cleartext with prior knowledge. */
  readonly protocol: UpstreamProtocol;
  /** Circuit breaker per target; undefined: no breaker. */
  readonly breaker?: BreakerSettings | undefined;
  /** Send the client's Host header (validated by the preserveHost stage) instead of the target's. */
  readonly preserveHost?: boolean | undefined;
  /** Active health checks per target; undefined: none. */
  readonly healthCheck?: HealthCheckSettings | undefined;
  /** Where it reports what a response consumed; undefined: its responses are not metered. */
  readonly usage?: UsagePlan | undefined;
}

const UPSTREAM_DEFAULTS = Object.freeze({ connectTimeoutMs: 2_000, responseTimeoutMs: 30_000, connections: 128, retries: 0 });

function target(url: string, path: (string | number)[], cx: CompileContext): UpstreamTarget | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    cx.error(path, `"${url}" is not a valid URL`);
    return undefined;
  }
  if (parsed.search || parsed.hash) {
    cx.error(path, 'an upstream URL cannot carry a query or fragment');
    return undefined;
  }
  if (parsed.username || parsed.password) {
    cx.error(path, 'an upstream URL cannot carry credentials');
    return undefined;
  }
  const basePath = parsed.pathname === '/' ? '' : parsed.pathname.replace(/\/+$/, '');
  return { origin: parsed.origin, basePath };
}

export function compileUpstreams(doc: PolicyDocument, cx: CompileContext): Map<string, UpstreamPlan> {
  const out = new Map<string, UpstreamPlan>();
  for (const [name, spec] of Object.entries(doc.upstreams ?? {})) {
    const at = ['upstreams', name];
    if (spec.url !== undefined && spec.targets !== undefined) {
      cx.error([...at, 'targets'], 'set either url or targets, not both');
      continue;
    }
    const urls = spec.url !== undefined ? [[spec.url, [...at, 'url']] as const] : (spec.targets ?? []).map((u, i) => [u, [...at, 'targets', i]] as const);
    if (urls.length === 0) {
      cx.error(at, 'an upstream needs url (or targets)');
      continue;
    }
    const targets = urls.map(([u, p]) => target(u, [...p], cx));
    if (targets.some((t) => t === undefined)) continue;
    const protocol = spec.protocol ?? 'http1';
    const scheme = protocol === 'h2' ? 'https:' : protocol === 'h2c' ? 'http:' : undefined;
    if (scheme !== undefined && (targets as UpstreamTarget[]).some((t) => !t.origin.startsWith(scheme))) {
      cx.error([...at, 'protocol'], `protocol ${protocol} needs ${scheme === 'https:' ? 'https' : 'http'} URLs (h2 is negotiated over TLS, h2c is cleartext)`);
      continue;
    }
    out.set(name, {
      name,
      targets: targets as UpstreamTarget[],
      connectTimeoutMs: spec.timeouts?.connect !== undefined ? parseDuration(spec.timeouts.connect) : UPSTREAM_DEFAULTS.connectTimeoutMs,
      responseTimeoutMs: spec.timeouts?.response !== undefined ? parseDuration(spec.timeouts.response) : UPSTREAM_DEFAULTS.responseTimeoutMs,
      connections: spec.connections ?? UPSTREAM_DEFAULTS.connections,
      retries: spec.retries ?? UPSTREAM_DEFAULTS.retries,
      protocol,
      breaker: compileBreaker(spec.breaker, [...at, 'breaker'], cx),
      preserveHost: spec.preserveHost,
      healthCheck: compileHealthCheck(spec.healthCheck, [...at, 'healthCheck'], cx),
      usage: compileUsage(spec.usage),
    });
  }
  return out;
}

/** `routes[].maxBodySize` by route index. */
export function compileBodyLimits(doc: PolicyDocument): (number | undefined)[] {
  return (doc.routes ?? []).map((r) => (r.maxBodySize !== undefined ? parseSize(r.maxBodySize) : undefined));
}
