// The decision core every decision door calls (Envoy ext_authz over gRPC and HTTP, forward auth,
// nginx auth_request). A data plane that forwards the request itself asks only "may this request
// pass, and as whom?": the core runs the same engine as the proxy on the request the data plane
// saw and answers in protocol-neutral terms, which each door translates to its wire shape.
//
// None of these protocols says when the request ends, so everything a decision takes is settled at
// once: a limits lease is released as soon as the answer is built (a policy with `concurrency` is
// refused while a decision listener runs, see concurrency-guard.ts), and the metrics and the one
// audit event are recorded then.
//
// Trust: the data plane is the socket peer, and it must be one of `trustedProxies`; any other peer
// could claim any client address or any original URI, so it is refused (403) before any stage runs.
import type { Logger } from 'pino';
import { identityHeaders } from '../authn/forward.js';
import { RequestContext, type RequestRecorder } from '../core/context.js';
import type { Plan } from '../core/plan.js';
import { type Deny, deny, problemBody, type ReasonCode, statusOf } from '../core/reasons.js';
import { type Answer, type Decision, isAnswer } from '../core/stage.js';
import type { PlanManager } from '../engine/compile.js';
import type { Engine } from '../engine/engine.js';
import { faultContained } from '../observability/faults.js';
import { decisionDuration, decisionsTotal, type HotCell } from '../observability/metrics.js';

export type DecisionDoor = 'envoy-grpc' | 'envoy-http' | 'forward-auth' | 'nginx';

/** The request a data plane asks about, as it saw it. */
export interface DecisionInput {
  readonly door: DecisionDoor;
  readonly method: string;
  /** Path with query as the data plane saw it, undecoded: canonicalised exactly like the proxy's. */
  readonly target: string;
  /** The Host (or :authority) of the original request. */
  readonly host: string;
  /** [name, value, …] of the original request (the door removes its own protocol headers or not; stages ignore them). */
  readonly rawHeaders: readonly string[];
  /** The data plane's address: it must be a trusted proxy. */
  readonly peer: string;
  /** The original client, believed only from a trusted peer; without it X-Forwarded-For in rawHeaders is walked. */
  readonly clientAddress?: string | undefined;
  /** Stands for the data plane's connection (authenticators memoise per connection); one per decision when absent. */
  readonly connection?: object | undefined;
  /** The door could not read the original request from what the data plane sent: answered and recorded like any decision. */
  readonly refuse?: Deny | undefined;
}

export interface DecisionResult {
  readonly allowed: boolean;
  /** 200 when allowed, else the deny status. */
  readonly status: number;
  /** undefined when allowed. */
  readonly code: ReasonCode | undefined;
  /** Identity headers the data plane must SET on the upstream request (replacing any copy the client sent). */
  readonly upstreamHeaders: readonly (readonly [string, string])[];
  /**
   * Headers the data plane must remove from the upstream request: every identity header this
   * decision does not set (a client's copy must not reach the upstream) and the credential headers
   * unless `forwardCredentials` is true. Lower case.
   */
  readonly removeHeaders: readonly string[];
  /** For the client: WWW-Authenticate, Retry-After, RateLimit-Policy / RateLimit. */
  readonly responseHeaders: readonly (readonly [string, string])[];
  /** problem+json when denied, '' when allowed. */
  readonly body: string;
  /** The request id the decision was recorded under (audit, logs). */
  readonly requestId: string;
  readonly metadata: { readonly subject?: string; readonly tenant?: string; readonly route?: string };
}

export interface DecisionServiceOptions {
  readonly policy: PlanManager;
  /** The engine with scope 'full' (the proxy's own engine: same lockouts, same leases). */
  readonly engine: Engine;
  readonly recorder?: RequestRecorder | undefined;
  readonly logger: Logger;
}

/** A decision's context: the engine's, plus which door asked. */
export class DecisionContext extends RequestContext {
  constructor(plan: Plan, start: number, input: DecisionInput, rawHeaders: readonly string[]) {
    super(plan, start, input.method, input.target, rawHeaders, '1.1', input.peer, input.connection ?? {});
    this.door = input.door;
  }
}

const UNTRUSTED_PEER = deny('IP_DENIED', 'This decision endpoint answers only trusted proxies: add the data plane to trustedProxies.');
const GATEWAY_FAULT = deny('GATEWAY_ERROR');
const NO_ROUTE = '-';
const NOTHING: readonly (readonly [string, string])[] = Object.freeze([]);
const NO_METADATA = Object.freeze({});

export class DecisionService {
  readonly #policy: PlanManager;
  readonly #engine: Engine;
  readonly #recorder: RequestRecorder | undefined;
  readonly #logger: Logger;
  /** portcullis_decisions_total cells by door, route, status and code. */
  readonly #cells = new Map<string, HotCell>();

  constructor(options: DecisionServiceOptions) {
    this.#policy = options.policy;
    this.#engine = options.engine;
    this.#recorder = options.recorder;
    this.#logger = options.logger;
  }

  /** Decides one request; synchronous when no stage needed I/O. Never throws: a fault is a 500 GATEWAY_ERROR result. */
  decide(input: DecisionInput): DecisionResult | Promise<DecisionResult> {
    const start = performance.now();
    let ctx: DecisionContext | undefined;
    try {
      ctx = new DecisionContext(this.#policy.plan, start, input, withHost(input.rawHeaders, input.host));
      const refused = this.#engine.prepare(ctx);
      // An untrusted peer learns nothing about the request it sent, not even that it is malformed.
      if (!ctx.trustedPeer) return this.#finish(ctx, attempted(ctx, UNTRUSTED_PEER));
      if (input.refuse !== undefined) return this.#finish(ctx, attempted(ctx, input.refuse));
      if (refused !== undefined) return this.#finish(ctx, attempted(ctx, refused));
      if (input.clientAddress !== undefined) ctx.clientIp = ctx.plan.ipRules.trusted.clientIp(ctx.peerIp, input.clientAddress);
      const outcome = this.#engine.decide(ctx);
      if (!(outcome instanceof Promise)) return this.#finish(ctx, outcome);
      const c = ctx;
      return outcome.then(
        (o) => this.#finish(c, o),
        (err: unknown) => this.#fault(c, input, err),
      );
    } catch (err) {
      return this.#fault(ctx, input, err);
    }
  }

  #fault(ctx: DecisionContext | undefined, input: DecisionInput, err: unknown): DecisionResult {
    faultContained(this.#logger, 'decision', err, { door: input.door, requestId: ctx?.requestId, route: ctx?.route?.name });
    if (ctx === undefined) return denied(undefined, GATEWAY_FAULT, '', 'Bearer');
    try {
      return this.#finish(ctx, GATEWAY_FAULT);
    } catch {
      return denied(undefined, GATEWAY_FAULT, ctx.requestId, 'Bearer');
    }
  }

  #finish(ctx: DecisionContext, outcome: Decision): DecisionResult {
    // Nothing tells a decision door when the request ends: what the limits took is given back now.
    const release = ctx.limits?.release;
    if (release !== undefined) {
      ctx.limits!.release = undefined;
      release();
    }
    let result: DecisionResult;
    if (outcome === null) result = allowed(ctx);
    else if (isAnswer(outcome)) result = answered(ctx, outcome);
    else {
      result = denied(ctx, outcome, ctx.requestId, ctx.plan.authn.challenge);
      ctx.code = outcome.code;
    }
    this.#account(ctx, result.status, performance.now() - ctx.start);
    return result;
  }

  #account(ctx: DecisionContext, status: number, durationMs: number): void {
    try {
      const route = ctx.route?.name ?? NO_ROUTE;
      const code = ctx.code ?? 'OK';
      const door = ctx.door!;
      const key = `${door}\u0000${route}\u0000${status}\u0000${code}`;
      let c = this.#cells.get(key);
      if (c === undefined) this.#cells.set(key, (c = decisionsTotal.cell(door, route, String(status), code)));
      c.n++;
      decisionDuration.labels(door).observe(durationMs / 1000);
      this.#recorder?.record(ctx, status, durationMs);
    } catch (err) {
      faultContained(this.#logger, 'audit', err, { requestId: ctx.requestId });
    }
  }
}

/** The original headers with the data plane's Host (the decision request's own Host names Portcullis). */
function withHost(raw: readonly string[], host: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') continue;
    out.push(name, raw[i + 1]!);
  }
  out.push('host', host);
  return out;
}

/** Refused before routing: the audit event records the target as sent (bounded), as the proxy does. */
function attempted(ctx: DecisionContext, d: Deny): Deny {
  if (ctx.path === '/' && ctx.forwardPath === '/') {
    const t = ctx.target.length > 2048 ? `${ctx.target.slice(0, 2048)}…` : ctx.target;
    const q = t.indexOf('?');
    ctx.path = q === -1 ? t : t.slice(0, q);
    ctx.query = q === -1 ? '' : t.slice(q);
  }
  return d;
}

function allowed(ctx: DecisionContext): DecisionResult {
  const forward = ctx.plan.authn.forward;
  const flat: string[] = [];
  identityHeaders(forward, ctx.principal, flat);
  const jwt = ctx.plan.identityJwt;
  if (ctx.identityJwt !== undefined && jwt !== undefined) flat.push(jwt.header, ctx.identityJwt);
  const upstreamHeaders: (readonly [string, string])[] = [];
  for (let i = 0; i < flat.length; i += 2) upstreamHeaders.push([flat[i]!, flat[i + 1]!]);
  const removeHeaders: string[] = [];
  for (const name of forward.strip) if (!flat.includes(name)) removeHeaders.push(name);
  return {
    allowed: true,
    status: 200,
    code: undefined,
    upstreamHeaders,
    removeHeaders,
    responseHeaders: limitHeaders(ctx, undefined),
    body: '',
    requestId: ctx.requestId,
    metadata: metadataOf(ctx),
  };
}

/**
 * The gateway's own answer (a CORS preflight) goes back to the client as the data plane relays a
 * refusal: Envoy sends it as is; a forward-auth or auth_request data plane reads its 2xx as "allow"
 * and forwards the preflight, since those protocols cannot carry a 2xx answer of the gateway's.
 */
function answered(ctx: DecisionContext, a: Answer): DecisionResult {
  const responseHeaders: (readonly [string, string])[] = [];
  for (let i = 0; i < a.headers.length; i += 2) responseHeaders.push([a.headers[i]!.toLowerCase(), a.headers[i + 1]!]);
  return {
    allowed: false,
    status: a.status,
    code: undefined,
    upstreamHeaders: NOTHING,
    removeHeaders: [],
    responseHeaders,
    body: '',
    requestId: ctx.requestId,
    metadata: metadataOf(ctx),
  };
}

function denied(ctx: DecisionContext | undefined, d: Deny, requestId: string, challenge: string): DecisionResult {
  const status = statusOf(d.code);
  const responseHeaders: (readonly [string, string])[] = [];
  if (d.headers !== undefined) for (const k in d.headers) responseHeaders.push([k.toLowerCase(), d.headers[k]!]);
  // RFC 9110: a 401 names how to authenticate, whichever stage built it.
  if (status === 401 && !responseHeaders.some(([k]) => k === 'www-authenticate')) responseHeaders.push(['www-authenticate', challenge]);
  // A fault's answer carries nothing the failed decision computed.
  if (ctx !== undefined && d !== GATEWAY_FAULT) for (const h of limitHeaders(ctx, responseHeaders)) responseHeaders.push(h);
  return {
    allowed: false,
    status,
    code: d.code,
    upstreamHeaders: NOTHING,
    removeHeaders: [],
    responseHeaders,
    body: problemBody(d, requestId),
    requestId,
    metadata: ctx === undefined ? NO_METADATA : metadataOf(ctx),
  };
}

/** The RateLimit headers the limits stage computed, except any the denial already set. */
function limitHeaders(ctx: DecisionContext, already: readonly (readonly [string, string])[] | undefined): (readonly [string, string])[] {
  const h = ctx.limits?.headers;
  if (h === undefined) return [];
  const out: (readonly [string, string])[] = [];
  for (const k in h) {
    const name = k.toLowerCase();
    if (already?.some(([n]) => n === name)) continue;
    out.push([name, h[k]!]);
  }
  return out;
}

function metadataOf(ctx: DecisionContext): DecisionResult['metadata'] {
  const p = ctx.principal;
  const route = ctx.route?.name;
  const m: { subject?: string; tenant?: string; route?: string } = {};
  if (p !== undefined) m.subject = p.subject;
  if (p?.tenant !== undefined) m.tenant = p.tenant;
  if (route !== undefined) m.route = route;
  return m;
}
