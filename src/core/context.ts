// Everything one request carries through the pipeline. One object per request, created by the
// server, filled in stage by stage; fields are plain for speed (this is the hot path).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Plan } from '../engine/plan.js';
import type { CompiledRoute } from '../routing/route.js';
import type { Principal } from './principal.js';
import type { ReasonCode } from './reasons.js';
import type { Admission } from '../upstream/balancer.js';

/** One line of a decision trace (only collected for `explain` and `test`). */
export interface TraceStep {
  readonly stage: string;
  readonly message: string;
}

/** What the limits stage learned; used for response headers and released on finish. */
export interface LimitState {
  /** RateLimit-Policy / RateLimit header values, when the route is limited. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Called once when the request ends (finish, abort, error): frees a concurrency slot. */
  release: (() => void) | undefined;
  /** true when the store failed and onError: allow let the request through. */
  readonly degraded: boolean;
}

export class RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The Plan this request started on; a hot reload never changes it mid-request. */
  readonly plan: Plan;
  /** performance.now() at arrival. */
  readonly start: number;

  requestId = '';
  /** The socket peer. */
  peerIp = '';
  /** The client as the trust rules see it (peer, or X-Forwarded-For walked past trusted hops). */
  clientIp = '';
  /** Whether the socket peer is a trusted proxy. */
  trustedPeer = false;
  /** Canonical path (decoded once, dot segments resolved): matched and forwarded. */
  path = '/';
  /** Raw query string including the leading "?", or "". */
  query = '';
  /** Host without port, lower-case. */
  host = '';
  /** The Host header as sent ("" when absent). */
  hostHeader = '';
  /** Content-Length as sent, when present. */
  contentLength: string | undefined = undefined;
  /** Whether the request has a Transfer-Encoding (a chunked body). */
  chunked = false;
  traceparent = '';

  route: CompiledRoute | undefined = undefined;
  /** The method a method-override header named, when the route honours it: routed and authorized as this. */
  methodOverride: string | undefined = undefined;
  params: Readonly<Record<string, string>> | undefined = undefined;
  principal: Principal | undefined = undefined;
  /** Signed identity token for the upstream (authentication.forward.jwt), set by the identity-jwt stage. */
  identityJwt: string | undefined = undefined;
  /** The permission a denial was about (audit `decision.permission`). */
  permission: string | undefined = undefined;
  limits: LimitState | undefined = undefined;
  /** The upstream exchange in progress; aborted when the client goes away first. */
  upstream: { abort(): void } | undefined = undefined;
  /** The upstream target the breaker stage picked; settled by the forwarder, released on abort. */
  admission: Admission | undefined = undefined;
  /** Shadow route: the decision authorization would have made. */
  shadowDecision: ReasonCode | 'allow' | undefined = undefined;
  /** The final reason code, set when denied or when forwarding failed. */
  code: ReasonCode | undefined = undefined;
  /** Set only when a trace was asked for (explain/test); stages push to it when present. */
  trace: TraceStep[] | undefined = undefined;

  constructor(req: IncomingMessage, res: ServerResponse, plan: Plan, start: number) {
    this.req = req;
    this.res = res;
    this.plan = plan;
    this.start = start;
  }

  note(stage: string, message: string): void {
    this.trace?.push({ stage, message });
  }
}
