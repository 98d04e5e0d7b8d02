// Everything one request carries through the engine. One object per request, created by a door,
// filled in stage by stage; fields are plain for speed (this is the hot path). Nothing here knows
// the protocol: a door hands over the request as sent (method, target, raw headers, the peer and
// an object that stands for its connection) and reads the decision back from the same object.
import type { SampledSpan } from '../observability/trace-sampler.js';
import type { Plan } from './plan.js';
import type { Principal } from './principal.js';
import type { ReasonCode } from './reasons.js';
import type { Route } from './route.js';

/** One line of a decision trace (only collected for `explain` and `test`). */
export interface TraceStep {
  readonly stage: string;
  readonly message: string;
}

/** What the limits stage took for this request: response headers, and the slot to give back when it ends. */
export interface LimitState {
  /** RateLimit-Policy / RateLimit header values, when the route is limited. */
  readonly headers: Readonly<Record<string, string>> | undefined;
  /** Called once when the request ends (finish, abort, error): frees a concurrency slot. */
  release: (() => void) | undefined;
  /** true when the store failed and onError: allow let the request through. */
  readonly degraded: boolean;
}

/** The request as a door received it: what every stage may read of the wire. */
export interface RequestView {
  /** The method as sent (upper-case by the parsers' rules). */
  readonly method: string;
  /** The request target as sent: path and query, undecoded. */
  readonly target: string;
  /** Header names and values as sent, alternating. */
  readonly rawHeaders: readonly string[];
  /** HTTP major.minor as the door speaks it ("1.1", "1.0", "2.0"). */
  readonly httpVersion: string;
  /** The socket peer's address. */
  readonly peer: string;
  /** Stands for the connection (same object for every request on it): authenticators remember what it last presented. */
  readonly connection: object;
}

export class RequestContext implements RequestView {
  /** The Plan this request started on; a hot reload never changes it mid-request. */
  readonly plan: Plan;
  /** performance.now() at arrival. */
  readonly start: number;
  readonly method: string;
  readonly target: string;
  readonly rawHeaders: readonly string[];
  readonly httpVersion: string;
  readonly peer: string;
  readonly connection: object;

  requestId = '';
  /** The socket peer, canonical. */
  peerIp = '';
  /** The client as the trust rules see it (peer, or X-Forwarded-For walked past trusted hops). */
  clientIp = '';
  /** Whether the socket peer is a trusted proxy. */
  trustedPeer = false;
  /** Canonical path (decoded once, dot segments resolved): matched and forwarded. */
  path = '/';
  /** The path as it goes upstream: the canonical one, re-encoded. */
  forwardPath = '/';
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
  /** Set when tracing is on and this request was sampled: the server span's ids and timing marks. */
  span: SampledSpan | undefined = undefined;

  route: Route | undefined = undefined;
  /** The method a method-override header named, when the route honours it: routed and authorized as this. */
  methodOverride: string | undefined = undefined;
  params: Readonly<Record<string, string>> | undefined = undefined;
  principal: Principal | undefined = undefined;
  /** Signed identity token for the upstream (authentication.forward.jwt), set by the identity-jwt stage. */
  identityJwt: string | undefined = undefined;
  /** The permission a denial was about (audit `decision.permission`). */
  permission: string | undefined = undefined;
  limits: LimitState | undefined = undefined;
  /** Shadow route: the decision authorization would have made. */
  shadowDecision: ReasonCode | 'allow' | undefined = undefined;
  /** Tokens charged for this response (metered upstreams); undefined: not metered. */
  tokens: number | undefined = undefined;
  /** The final reason code, set when denied or when forwarding failed. */
  code: ReasonCode | undefined = undefined;
  /** The decision door that asked ("nginx", "forward-auth", …); undefined for a request the proxy forwards. */
  door: string | undefined = undefined;
  /** Headers every answer to this request carries, denial or upstream response (CORS), flat [name, value, …]. */
  responseHeaders: readonly string[] | undefined = undefined;
  /** The path the upstream gets when a route's rewrite changed it (encoded); undefined: `forwardPath` unchanged. */
  upstreamPath: string | undefined = undefined;
  /** Set only when a trace was asked for (explain/test); stages push to it when present. */
  trace: TraceStep[] | undefined = undefined;

  // Positional, so a door builds one object per request, not a view object besides it.
  constructor(plan: Plan, start: number, method: string, target: string, rawHeaders: readonly string[], httpVersion: string, peer: string, connection: object) {
    this.plan = plan;
    this.start = start;
    this.method = method;
    this.target = target;
    this.rawHeaders = rawHeaders;
    this.httpVersion = httpVersion;
    this.peer = peer;
    this.connection = connection;
  }

  /** A context for a request given as a view (`test`, `explain`, tests). */
  static of(plan: Plan, view: RequestView, start = performance.now()): RequestContext {
    return new RequestContext(plan, start, view.method, view.target, view.rawHeaders, view.httpVersion, view.peer, view.connection);
  }

  /** Whether the client has gone away; a door that cannot tell says no. */
  get gone(): boolean {
    return false;
  }

  note(stage: string, message: string): void {
    this.trace?.push({ stage, message });
  }
}

/** Audit's view of a finished request (the audit pipeline implements it; a door calls it once per request). */
export interface RequestRecorder {
  record(ctx: RequestContext, status: number, durationMs: number): void;
}
