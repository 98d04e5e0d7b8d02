// Route maxBodySize → 413 BODY_TOO_LARGE. A declared Content-Length over the limit is refused by
// the stage before a byte of the body is read (and, with Expect: 100-continue, before the 100).
// A body without Content-Length (chunked) is counted while it streams to the upstream; passing
// the limit aborts the upstream request and answers 413 if the response has not started.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { RequestContext } from '../core/context.js';
import { deny } from '../core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../core/stage.js';

export class BodyTooLargeError extends Error {
  readonly code = 'BODY_TOO_LARGE';
  constructor(limit: number) {
    super(`the request body exceeds ${limit} bytes`);
  }
}

export const TOO_LARGE = deny('BODY_TOO_LARGE');

export const bodyLimitStage: Stage = {
  name: 'bodyLimit',
  run(ctx: RequestContext): Outcome {
    const max = ctx.route?.maxBodySize;
    if (max === undefined) return CONTINUE;
    const declared = ctx.contentLength;
    if (declared !== undefined && Number(declared) > max) {
      ctx.note('bodyLimit', `Content-Length ${declared} exceeds ${max}`);
      return TOO_LARGE;
    }
    return CONTINUE;
  },
};

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
export function requestBody(ctx: RequestContext): Readable {
  const max = ctx.route?.maxBodySize;
  // With Content-Length, the stage checked it and the parser never delivers more than declared.
  if (max === undefined || ctx.contentLength !== undefined) return ctx.req;
  return ctx.req.pipe(new ByteLimit(max));
}
