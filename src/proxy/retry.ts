// Retries (upstreams.<name>.retries): only for idempotent methods without a request body, and only
// after an error that proves no byte reached the upstream (the connection was never established),
// so a retried request can never be applied twice. The next attempt goes to another target when
// the upstream has one whose breaker admits it.

import { upstreamRetriesTotal } from '../observability/metrics.js';
import { type Admission, isAllOpen } from '../upstream/balancer.js';
import type { ProxyContext } from './context.js';

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']);
/** Errors raised before a connection existed: nothing was written. */
const NOT_CONNECTED = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTFOUND', 'UND_ERR_CONNECT_TIMEOUT']);

/**
 * Decides whether the failed attempt number `attempt` (0 = first) may be retried. When it may, the
 * failure is recorded on the old target, ctx.admission is replaced, and the new Admission returned.
 */
export function retryAdmission(ctx: ProxyContext, err: Error, attempt: number, hasBody: boolean): Admission | undefined {
  const current = ctx.admission;
  const route = ctx.route;
  if (current === undefined || route === undefined || hasBody) return undefined;
  const up = ctx.plan.upstreams.get(route.upstream);
  if (up === undefined || attempt >= up.retries) return undefined;
  if (!IDEMPOTENT.has(ctx.req.method ?? '')) return undefined;
  const code = (err as { code?: string }).code;
  if (code === undefined || !NOT_CONNECTED.has(code)) return undefined;
  current.fail();
  const next = current.next(up);
  if (isAllOpen(next)) return undefined;
  ctx.admission = next;
  upstreamRetriesTotal.inc({ upstream: up.name });
  return next;
}
