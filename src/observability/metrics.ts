// Every Prometheus metric Portcullis exposes, declared in this one file (names and labels are a
// public contract: dashboards and alerts depend on them). Other modules import the instruments;
// none creates its own. Labels are bounded: route names, upstream names, reason codes, never paths.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export const registry = new Registry();
// Process metrics keep prom-client's standard names (process_cpu_seconds_total, nodejs_*): stock Node
// dashboards and alerts query exactly those.
collectDefaultMetrics({ register: registry });

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

// Requests and upstreams
// The per-request instruments are "hot": the request path bumps plain numbers (no label hashing,
// no allocation) and prom-client reads them when /metrics is scraped.

/** A counter cell for one label combination; `n` is added to the counter at the next scrape. */
export interface HotCell {
  n: number;
}

type CounterConfig<T extends string> = ConstructorParameters<typeof Counter<T>>[0];

/**
 * A counter the hot path bumps through cells (one per label combination, looked up once and kept):
 * a cell is a plain number, added to the prom-client counter when /metrics is scraped.
 */
export type HotCounter<T extends string> = Counter<T> & { cell(...values: string[]): HotCell };

function hotCounter<T extends string>(config: CounterConfig<T>): HotCounter<T> {
  const cells = new Map<string, { labels: Partial<Record<T, string>>; cell: HotCell }>();
  const names = (config.labelNames ?? []) as readonly T[];
  const counter = new Counter<T>({
    ...config,
    collect() {
      for (const { labels, cell } of cells.values()) {
        if (cell.n > 0) {
          this.inc(labels, cell.n);
          cell.n = 0;
        }
      }
    },
  });
  return Object.assign(counter, {
    cell(...values: string[]): HotCell {
      const key = values.join('\u0000');
      let e = cells.get(key);
      if (e === undefined) {
        const labels: Partial<Record<T, string>> = {};
        names.forEach((n, i) => {
          labels[n] = values[i] ?? '';
        });
        cells.set(key, (e = { labels, cell: { n: 0 } }));
      }
      return e.cell;
    },
  });
}

/**
 * The cells of one metric by two label values, kept so that a request finds its cell with two map
 * lookups and builds no string: `cells.of(a, b).inc()`. `make` creates the cell the first time.
 */
export class CellsBy2<C> {
  readonly #make: (a: string, b: string) => C;
  readonly #byA = new Map<string, Map<string, C>>();

  constructor(make: (a: string, b: string) => C) {
    this.#make = make;
  }

  of(a: string, b: string): C {
    let byB = this.#byA.get(a);
    if (byB === undefined) this.#byA.set(a, (byB = new Map()));
    let c = byB.get(b);
    if (c === undefined) byB.set(b, (c = this.#make(a, b)));
    return c;
  }
}

export const requestsTotal = hotCounter({
  name: 'portcullis_requests_total',
  help: 'Requests answered, by route, method, status and reason code ("OK" when allowed and forwarded).',
  labelNames: ['route', 'method', 'status', 'code'] as const,
  registers: [registry],
});

/** A histogram whose observe is a bucket search and two additions; exported in Prometheus form. */
class HotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #label: string;
  readonly #buckets: readonly number[];
  readonly #children = new Map<string, { counts: Float64Array; sum: number; count: number }>();

  constructor(config: { name: string; help: string; label: string; buckets: readonly number[]; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.#label = config.label;
    this.#buckets = config.buckets;
    for (const r of config.registers) r.registerMetric(this as never);
  }

  labels(value: string): { observe(v: number): void } {
    let c = this.#children.get(value);
    if (c === undefined) this.#children.set(value, (c = { counts: new Float64Array(this.#buckets.length), sum: 0, count: 0 }));
    const child = c;
    const buckets = this.#buckets;
    return {
      observe(v: number): void {
        child.sum += v;
        child.count++;
        for (let i = 0; i < buckets.length; i++) {
          if (v <= buckets[i]!) {
            child.counts[i]!++;
            return;
          }
        }
      },
    };
  }

  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: { labels: Record<string, string | number>; value: number; metricName: string }[] }> {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const [label, c] of this.#children) {
      let cumulative = 0;
      for (let i = 0; i < this.#buckets.length; i++) {
        cumulative += c.counts[i]!;
        values.push({ labels: { le: this.#buckets[i]!, [this.#label]: label }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels: { le: '+Inf', [this.#label]: label }, value: c.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { [this.#label]: label }, value: c.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { [this.#label]: label }, value: c.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.#children.clear();
  }
}

export const requestDuration = new HotHistogram({
  name: 'portcullis_request_duration_seconds',
  help: 'Time from request arrival to the end of the response, by route.',
  label: 'route',
  buckets: latencyBuckets,
  registers: [registry],
});
export const upstreamDuration = new HotHistogram({
  name: 'portcullis_upstream_duration_seconds',
  help: 'Time from forwarding to the upstream response headers, by upstream.',
  label: 'upstream',
  buckets: latencyBuckets,
  registers: [registry],
});
export const decisionsTotal = hotCounter({
  name: 'portcullis_decisions_total',
  help: 'Decisions answered to a data plane (Envoy ext_authz, forward auth, nginx auth_request), by door, route, status and reason code ("OK" when allowed).',
  labelNames: ['door', 'route', 'status', 'code'] as const,
  registers: [registry],
});
export const decisionDuration = new HotHistogram({
  name: 'portcullis_decision_duration_seconds',
  help: 'Time to decide, by door (envoy-grpc | envoy-http | forward-auth | nginx).',
  label: 'door',
  buckets: latencyBuckets,
  registers: [registry],
});
/** Set by the proxy server; read at scrape time. */
export const inFlight = { n: 0 };
new Gauge({
  name: 'portcullis_in_flight_requests',
  help: 'Requests currently being handled.',
  registers: [registry],
  collect() {
    this.set(inFlight.n);
  },
});

// Policy
export const policyReloadsTotal = new Counter({
  name: 'portcullis_policy_reloads_total',
  help: 'Policy (re)loads by result (success | failure).',
  labelNames: ['result'] as const,
  registers: [registry],
});
// TLS listeners
export const tlsReloadsTotal = new Counter({
  name: 'portcullis_tls_reloads_total',
  help: 'Certificate reloads by listener (proxy | admin) and result (success | failure); a failure keeps the old pair.',
  labelNames: ['listener', 'result'] as const,
  registers: [registry],
});
export const tlsHandshakeFailuresTotal = new Counter({
  name: 'portcullis_tls_handshake_failures_total',
  help: 'TLS handshakes refused or abandoned, by listener (old protocol version, no or unverified client certificate, timeout).',
  labelNames: ['listener'] as const,
  registers: [registry],
});
export const policyInfo = new Gauge({
  name: 'portcullis_policy_info',
  help: 'The running policy: 1 for its hash.',
  labelNames: ['hash'] as const,
  registers: [registry],
});

// Authentication and authorization
export const authTotal = hotCounter({
  name: 'portcullis_auth_total',
  help: 'Authentication attempts by method (apiKey | jwt | none) and result (success or a reason code).',
  labelNames: ['method', 'result'] as const,
  registers: [registry],
});
export const jwtCacheTotal = hotCounter({
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

export const storeTimeoutsTotal = new Counter({
  name: 'portcullis_store_timeouts_total',
  help: 'Limits checks the proxy stopped waiting for (Redis did not answer within store.timeout).',
  registers: [registry],
});
export const storeLateRepliesTotal = new Counter({
  name: 'portcullis_store_late_replies_total',
  help: 'Answers to checks the proxy had stopped waiting for: expired (past their deadline, they changed nothing), allowed (they spent tokens and quota; a slot is released) or denied.',
  labelNames: ['effect'] as const,
  registers: [registry],
});
export const storeSlotReleasesTotal = new Counter({
  name: 'portcullis_store_slot_releases_total',
  help: 'Compensating concurrency-slot releases: abandoned (a check failed or timed out), ended (the request ended before its check answered), retried (a failed release sent again).',
  labelNames: ['reason'] as const,
  registers: [registry],
});
export const storeSlotsHeld = new Gauge({
  name: 'portcullis_store_slots_held',
  help: 'Concurrency slots this replica holds and renews for its in-flight requests.',
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
/** Unexpected throws the proxy contained; any increase is a bug worth a log search (the log line has the stack). */
export const gatewayFaultsTotal = new Counter({
  name: 'portcullis_gateway_faults_total',
  help: 'Unexpected exceptions contained by the proxy, by where they were caught (request, upgrade, forward, answer, settle, audit, client_error, connection, response, decision, unhandled_rejection).',
  labelNames: ['where'] as const,
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
  help: "Audit events waiting in a sink's in-memory queue.",
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const auditSpooledEvents = new Gauge({
  name: 'portcullis_audit_spooled_events',
  help: "Audit events waiting in a sink's on-disk spool.",
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const auditBacklogEvents = new Gauge({
  name: 'portcullis_audit_backlog_events',
  help: 'Audit events not yet delivered to a sink (in-memory queue plus on-disk spool).',
  labelNames: ['sink'] as const,
  registers: [registry],
});
export const auditBacklogAge = new Gauge({
  name: 'portcullis_audit_backlog_age_seconds',
  help: "Age of the oldest audit event waiting in a sink's spool (0 when nothing is spooled).",
  labelNames: ['sink'] as const,
  registers: [registry],
});

// Tracing (only moves when OTEL_EXPORTER_OTLP_ENDPOINT is set)
export const tracesTotal = new Counter({
  name: 'portcullis_traces_total',
  help: "Sampled requests' traces by result: exported to the OTLP collector, failed (the collector refused or was unreachable), dropped (queue full or worker gone).",
  labelNames: ['result'] as const,
  registers: [registry],
});

// Policy rules and upstream health
export const crossTenantTotal = new Counter({
  name: 'portcullis_cross_tenant_total',
  help: "Requests a cross-tenant role let through a route's tenant check, by route.",
  labelNames: ['route'] as const,
  registers: [registry],
});
export const conditionsTotal = new Counter({
  name: 'portcullis_conditions_total',
  help: 'Route `when` conditions evaluated, by route and result (true | false | error: not a bool or failed to evaluate; both deny).',
  labelNames: ['route', 'result'] as const,
  registers: [registry],
});
export const upstreamHealthy = new Gauge({
  name: 'portcullis_upstream_healthy',
  help: 'Active health check state per upstream target: 1 healthy (in rotation), 0 unhealthy.',
  labelNames: ['upstream', 'target'] as const,
  registers: [registry],
});
export const healthChecksTotal = new Counter({
  name: 'portcullis_health_checks_total',
  help: 'Active health check probes by upstream, target and result (ok | fail).',
  labelNames: ['upstream', 'target', 'result'] as const,
  registers: [registry],
});
