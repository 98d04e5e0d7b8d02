// The decision engine: every door (the HTTP/1.1 proxy, `portcullis test` and `explain`, and the
// doors to come) hands it a RequestContext built from what it received and gets the same decision
// back. `prepare` is the one preamble (who the client is, the request id, the canonical path);
// `decide` runs the stages in their one order. What a door does with an allowed request
// (forwarding, breakers, retries, a WebSocket tunnel) is the door's business.
import type { RequestContext } from '../core/context.js';
import { type Deny, deny } from '../core/reasons.js';
import { type Decision, runStages, type Stage } from '../core/stage.js';
import { requestIdFor } from '../observability/request-id.js';
import type { TraceSampler } from '../observability/trace-sampler.js';
import { traceparentFor } from '../observability/traceparent.js';
import { arrivalHeaders } from '../request-headers.js';
import { canonicalize, isDeny } from '../routing/canonical.js';
import { corsPreflight } from '../routing/cors.stage.js';
import { createStages, type DecisionScope, type StageParts } from './stages.js';

/** The body's framing is ambiguous: answered, and the connection must close before another byte is read as a request. */
export const BAD_FRAMING = deny('BAD_REQUEST', 'The request body framing is ambiguous: only one Transfer-Encoding line of exactly "chunked", without Content-Length, on HTTP/1.1.');
const NO_HOST = deny('BAD_REQUEST', 'An HTTP/1.1 request needs a Host header.');

export class Engine {
  readonly #stages: readonly Stage[];
  readonly #sampler: TraceSampler | undefined;
  // Clients send the same Host on every request of a connection: the last spelling and its host.
  #lastHostHeader = '';
  #lastHost = '';

  constructor(stages: readonly Stage[], sampler?: TraceSampler) {
    this.#stages = stages;
    this.#sampler = sampler;
  }

  /** The engine of a running gateway (`full`), or of `test`/`explain` (`policy`: no store call, nothing spent). */
  static create(parts: StageParts, scope: DecisionScope = 'full'): Engine {
    return new Engine(createStages(parts, scope), scope === 'full' ? parts.sampler : undefined);
  }

  /** The names of the stages, in order (for traces and docs). */
  get stageNames(): readonly string[] {
    return this.#stages.map((s) => s.name);
  }

  /**
   * Reads what every stage relies on from the request as sent: the client address through the
   * trusted proxies, the request id, trace context, body framing, Host and the canonical path.
   * A request that cannot be made unambiguous is refused here, before any stage sees it.
   */
  prepare(ctx: RequestContext): Deny | undefined {
    const trust = ctx.plan.ipRules.trusted;
    const h = arrivalHeaders(ctx.rawHeaders);
    const peer = ctx.peer;
    ctx.trustedPeer = trust.trusts(peer);
    ctx.peerIp = peer;
    ctx.clientIp = trust.clientIp(peer, h.forwardedFor);
    ctx.requestId = requestIdFor(ctx.trustedPeer, h.requestId);
    ctx.traceparent = this.#sampler === undefined ? traceparentFor(h.traceparent) : this.#sampler.begin(h.traceparent, ctx);
    ctx.contentLength = h.contentLength;
    ctx.chunked = h.chunked;
    const hostHeader = (ctx.hostHeader = h.host ?? '');
    // Ambiguous framing, and any Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1).
    if (h.badFraming || (h.chunked && ctx.httpVersion === '1.0')) return BAD_FRAMING;
    if (h.host === undefined && ctx.httpVersion === '1.1') return NO_HOST;
    const target = canonicalize(ctx.target, hostHeader);
    if (isDeny(target)) return target;
    ctx.path = target.path;
    ctx.query = target.query;
    ctx.forwardPath = target.forwardPath;
    if (hostHeader !== this.#lastHostHeader) {
      this.#lastHost = hostOnly(hostHeader);
      this.#lastHostHeader = hostHeader;
    }
    ctx.host = this.#lastHost;
    return undefined;
  }

  /**
   * Runs every stage until one denies; synchronous when no stage needed I/O. A CORS preflight for a
   * CORS route is answered (or refused) first: it carries no credentials and asks about another method.
   */
  decide(ctx: RequestContext): Decision | Promise<Decision> {
    const preflight = corsPreflight(ctx);
    if (preflight !== undefined) return preflight;
    return runStages(this.#stages, ctx);
  }
}

/** Host header without port, lower-case ("[::1]:8080" → "[::1]"). */
function hostOnly(host: string): string {
  let end = host.length;
  const colon = host.lastIndexOf(':');
  if (colon !== -1 && host.indexOf(']', colon) === -1) end = colon;
  return (end === host.length ? host : host.slice(0, end)).toLowerCase();
}
