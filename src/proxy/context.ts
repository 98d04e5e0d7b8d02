// The proxy door's request: the engine's context plus the node:http exchange, the upstream call
// in progress and the target the breaker admitted. Stages see only the RequestContext part.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { RequestContext } from '../core/context.js';
import type { Plan } from '../core/plan.js';
import type { Admission } from '../upstream/balancer.js';

export class ProxyContext extends RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The upstream exchange in progress; aborted when the client goes away first. */
  upstream: { abort(): void } | undefined = undefined;
  /** The upstream target the breaker stage picked; settled by the forwarder, released on abort. */
  admission: Admission | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, plan: Plan, start: number, peer: string) {
    super(plan, start, req.method ?? '', req.url ?? '/', req.rawHeaders, req.httpVersion, peer, req.socket);
    this.req = req;
    this.res = res;
  }

  override get gone(): boolean {
    return this.res.destroyed;
  }
}
