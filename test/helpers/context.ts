// Request contexts for tests that drive a stage directly: built the way a door builds them.
import type { IncomingMessage } from 'node:http';
import { RequestContext } from '../../src/core/context.js';
import type { Plan } from '../../src/core/plan.js';

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
