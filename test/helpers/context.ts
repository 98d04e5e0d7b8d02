// Request contexts for tests that drive a stage directly: built the way a door builds them.
import type { IncomingMessage } from 'node:http';
import { RequestContext, type RequestView } from '../../src/core/context.js';
import type { Plan } from '../../src/core/plan.js';

/** A context for a request that never touched a socket (defaults: GET / from 127.0.0.1). */
export function requestContext(plan: Plan, view: Partial<RequestView> = {}): RequestContext {
  return new RequestContext(plan, performance.now(), {
    method: view.method ?? 'GET',
    target: view.target ?? '/',
    rawHeaders: view.rawHeaders ?? [],
    httpVersion: view.httpVersion ?? '1.1',
    peer: view.peer ?? '127.0.0.1',
    connection: view.connection ?? {},
  });
}

/** A context for a request node:http parsed (or a bare IncomingMessage). */
export function contextOf(req: IncomingMessage, plan: Plan): RequestContext {
  return new RequestContext(plan, performance.now(), {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    rawHeaders: req.rawHeaders,
    httpVersion: req.httpVersion || '1.1',
    peer: req.socket?.remoteAddress ?? '',
    connection: req.socket ?? {},
  });
}
