// GET /admin/breakers: the state of every circuit breaker, per upstream target; GET
// /admin/upstreams/health: the active health check state of every target that has one.
import type { Balancers } from '../upstream/balancer.js';
import type { RegisterRoute } from './routes.js';

export function breakerRoutes(route: RegisterRoute, balancers: Balancers): void {
  route('GET', '/admin/breakers', () => ({
    status: 200,
    body: {
      breakers: balancers.snapshot().map((b) => ({
        upstream: b.upstream,
        target: b.target,
        state: b.state,
        retryAfterSeconds: Math.ceil(b.retryAfterMs / 1000),
      })),
    },
  }));
  route('GET', '/admin/upstreams/health', () => ({ status: 200, body: { targets: balancers.healthSnapshot() } }));
}
