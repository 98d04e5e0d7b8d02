// The access log (`serve --access-log`): one pino line per finished request, for operators who
// want request lines without configuring an audit sink. It is a RequestRecorder like audit, called
// once when a request settles; it writes through the process logger, whose destination is pino's
// asynchronous one, so the request path only serializes a small object and never waits on I/O.
// What it logs is chosen field by field: the canonical path without the query (query values may be
// secrets), the caller's subject and tenant, never a header or a credential.
import type { Logger } from 'pino';
import type { RequestContext, RequestRecorder } from '../core/context.js';

export interface AccessLogOptions {
  /** Share of requests logged, 0 < sample <= 1 (1: every request). */
  readonly sample: number;
  /** Tests pass a fixed sequence; default Math.random. */
  readonly random?: () => number;
}

export class AccessLog implements RequestRecorder {
  readonly #logger: Pick<Logger, 'info'>;
  readonly #sample: number;
  readonly #random: () => number;

  constructor(logger: Logger, options: AccessLogOptions) {
    // Its own level: the access log is asked for explicitly, so LOG_LEVEL=warn does not silence it.
    this.#logger = logger.child({ log: 'access' }, { level: 'info' });
    this.#sample = options.sample;
    this.#random = options.random ?? Math.random;
  }

  record(ctx: RequestContext, status: number, durationMs: number): void {
    if (this.#sample < 1 && this.#random() >= this.#sample) return;
    const p = ctx.principal;
    this.#logger.info(
      {
        requestId: ctx.requestId,
        method: ctx.method,
        path: ctx.path,
        route: ctx.route?.name ?? null,
        status,
        code: ctx.code ?? null,
        durationMs: Math.round(durationMs * 1000) / 1000,
        ip: ctx.clientIp,
        subject: p?.subject ?? null,
        tenant: p?.tenant ?? null,
      },
      'request',
    );
  }
}

/** Both recorders, in order; either may be absent. */
export function bothRecorders(first: RequestRecorder | undefined, second: RequestRecorder | undefined): RequestRecorder | undefined {
  if (first === undefined) return second;
  if (second === undefined) return first;
  return {
    record(ctx, status, durationMs) {
      first.record(ctx, status, durationMs);
      second.record(ctx, status, durationMs);
    },
  };
}
