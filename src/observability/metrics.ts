// Every Prometheus metric Portcullis exposes, declared in this one file (names and labels are a
// public contract: dashboards and alerts depend on them). Other modules import the instruments;
// none creates its own. Labels are bounded: route names, upstream names, reason codes, never paths.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'portcullis_process_' });

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// Requests and upstreams
export const requestsTotal = new Counter({
  name: 'portcullis_requests_total',
  help: 'Requests answered, by route, method, status and reason code ("OK" when allowed and forwarded).',
  labelNames: ['route', 'method', 'status', 'code'] as const,
  registers: [registry],
});
export const requestDuration = new Histogram({
  name: 'portcullis_request_duration_seconds',
  help: 'Time from request arrival to the end of the response, by route.',
  labelNames: ['route'] as const,
  buckets: latencyBuckets,
  registers: [registry],
});
export const upstreamDuration = new Histogram({
  name: 'portcullis_upstream_duration_seconds',
  help: 'Time from forwarding to the upstream response headers, by upstream.',
  labelNames: ['upstream'] as const,
  buckets: latencyBuckets,
  registers: [registry],
});
export const inFlightRequests = new Gauge({
  name: 'portcullis_in_flight_requests',
  help: 'Requests currently being handled.',
  registers: [registry],
});

// Policy
export const policyReloadsTotal = new Counter({
  name: 'portcullis_policy_reloads_total',
  help: 'Policy (re)loads by result (success | failure).',
  labelNames: ['result'] as const,
  registers: [registry],
});
export const policyInfo = new Gauge({
  name: 'portcullis_policy_info',
  help: 'The running policy: 1 for its hash.',
  labelNames: ['hash'] as const,
  registers: [registry],
});

// Authentication and authorization
export const authTotal = new Counter({
  name: 'portcullis_auth_total',
  help: 'Authentication attempts by method (apiKey | jwt | none) and result (success or a reason code).',
  labelNames: ['method', 'result'] as const,
  registers: [registry],
});
export const jwtCacheTotal = new Counter({
  name: 'portcullis_jwt_cache_total',
  help: 'Verified-token cache lookups by result (hit | miss).',
  labelNames: ['result'] as const,
  registers: [registry],
});
export const jwksFetchesTotal = new Counter({
  name: 'portcullis_jwks_fetches_total',
  help: 'JWKS fetches by issuer and result (success | failure).',
  labelNames: ['issuer', 'result'] as const,
  registers: [registry],
});
export const shadowDecisionsTotal = new Counter({
  name: 'portcullis_shadow_decisions_total',
  help: 'Decisions shadow routes would have made (allow or a reason code), by route.',
  labelNames: ['route', 'decision'] as const,
  registers: [registry],
});

// Limits and the store
export const storeErrorsTotal = new Counter({
  name: 'portcullis_store_errors_total',
  help: 'Store calls that failed or timed out, by operation.',
  labelNames: ['op'] as const,
  registers: [registry],
});
export const storeDegraded = new Gauge({
  name: 'portcullis_store_degraded',
  help: '1 while the store is failing and requests are handled by store.onError.',
  registers: [registry],
});
export const storeCallDuration = new Histogram({
  name: 'portcullis_store_call_duration_seconds',
  help: 'Duration of the per-request limits store call.',
  buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1],
  registers: [registry],
});

// Upstream resilience
export const breakerState = new Gauge({
  name: 'portcullis_breaker_state',
  help: 'Circuit breaker state per upstream target: 0 closed, 1 half-open, 2 open.',
  labelNames: ['upstream', 'target'] as const,
  registers: [registry],
});
export const breakerTransitionsTotal = new Counter({
  name: 'portcullis_breaker_transitions_total',
  help: 'Circuit breaker transitions by upstream, target and new state.',
  labelNames: ['upstream', 'target', 'to'] as const,
  registers: [registry],
});
export const upstreamRetriesTotal = new Counter({
  name: 'portcullis_upstream_retries_total',
  help: 'Requests retried on another attempt, by upstream.',
  labelNames: ['upstream'] as const,
  registers: [registry],
});
export const websocketsOpen = new Gauge({
  name: 'portcullis_websockets_open',
  help: 'WebSocket tunnels currently open.',
  registers: [registry],
});

// Audit
export const auditEventsTotal = new Counter({
  name: 'portcullis_audit_events_total',
  help: 'Audit events by sink and result (written | spooled | failed | dropped).',
  labelNames: ['sink', 'result'] as const,
  registers: [registry],
});
export const auditQueueDepth = new Gauge({
  name: 'portcullis_audit_queue_depth',
  help: 'Audit events waiting in a sink\'s in-memory queue.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const auditSpooledEvents = new Gauge({
  name: 'portcullis_audit_spooled_events',
  help: 'Audit events waiting in a sink\'s on-disk spool.',
  labelNames: ['sink'] as const,
  registers: [registry],
});
