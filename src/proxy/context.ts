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
  /**
   * Set by a door whose protocol can end a response in its head (HTTP/2): the forwarder hands it a
   * gRPC trailers-only answer, which must stay one HEADERS frame for gRPC clients to read its status.
   */
  endInHead: ((status: number, headers: readonly string[]) => void) | undefined = undefined;

  /** `rawHeaders`: the headers the engine sees, when the door's own differ from the request's (HTTP/2 pseudo-headers). */
  constructor(req: IncomingMessage, res: ServerResponse, plan: Plan, start: number, peer: string, rawHeaders: readonly string[] = req.rawHeaders) {
    super(plan, start, req.method ?? '', req.url ?? '/', rawHeaders, req.httpVersion, peer, req.socket);
    this.req = req;
    this.res = res;
  }

  override get gone(): boolean {
    return this.res.destroyed;
  }
}
