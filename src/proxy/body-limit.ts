// A body without Content-Length (chunked) is counted while it streams to the upstream; passing
// the route's maxBodySize aborts the upstream request and answers 413 if the response has not
// started. A declared length was checked before the request was allowed (the bodyLimit stage).
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import type { ProxyContext } from './context.js';

export { TOO_LARGE } from '../upstream/body-limit.stage.js';

export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(limit: number) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

class ByteLimit extends Transform {
  readonly #limit: number;
  #seen = 0;

  constructor(limit: number) {
    super();
    this.#limit = limit;
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.#seen += chunk.length;
    if (this.#seen > this.#limit) callback(new BodyTooLargeError(this.#limit));
    else callback(null, chunk);
  }
}

/** The body to forward: the request itself, or a counting stream when the size is not declared. */
export function requestBody(ctx: ProxyContext): Readable {
  const route = ctx.route;
  const max = route === undefined ? undefined : ctx.plan.maxBodySize[route.index];
  // With Content-Length, the stage checked it and the parser never delivers more than declared.
  if (max === undefined || ctx.contentLength !== undefined) return ctx.req;
  return ctx.req.pipe(new ByteLimit(max));
}
