// A stage whose run is timed into a sampled request's span (its start and end marks), for the
// trace worker's child spans. Only installed when tracing is on; an unsampled request pays one
// field read.
import type { RequestContext } from '../core/context.js';
import type { Outcome, Stage } from '../core/stage.js';

export function timed(stage: Stage, at: number): Stage {
  const inner = stage.run.bind(stage);
  const run = (ctx: RequestContext): Outcome | Promise<Outcome> => {
    const span = ctx.span;
    if (span === undefined) return inner(ctx);
    const marks = span.marks;
    marks[at] = performance.now();
    const out = inner(ctx);
    if (out !== null && typeof (out as Promise<Outcome>).then === 'function') {
      return (out as Promise<Outcome>).then((o) => {
        marks[at + 1] = performance.now();
        return o;
      });
    }
    marks[at + 1] = performance.now();
    return out;
  };
  return { name: stage.name, run };
}
