// Request contexts for tests that drive a stage directly: built the way a door builds them.
import type { IncomingMessage } from 'node:http';
import { RequestContext, type RequestView } from '../../src/core/context.js';
import type { Plan } from '../../src/core/plan.js';

/** A context for a request node:http parsed (or a bare IncomingMessage). */
export function contextOf(req: IncomingMessage, plan: Plan): RequestContext {
  return RequestContext.of(plan, {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    rawHeaders: req.rawHeaders,
    httpVersion: req.httpVersion || '1.1',
    peer: req.socket?.remoteAddress ?? '',
    connection: req.socket ?? {},
  });
}

/** What the stages write on a context as a request passes them. */
type Decided = Partial<Omit<RequestContext, 'plan' | 'start' | 'gone' | 'note' | keyof RequestView>>;

/**
 * A context as a door starts it for `method` and the path and query given, with what the stages
 * before the one under test would have set: for tests that begin after routing and authentication.
 */
export function contextWith(plan: Plan, decided: Decided & { readonly method?: string } = {}): RequestContext {
  const { method = 'GET', ...state } = decided;
  const view: RequestView = { method, target: (state.path ?? '/') + (state.query ?? ''), rawHeaders: [], httpVersion: '1.1', peer: '', connection: {} };
  return Object.assign(RequestContext.of(plan, view), state);
}
