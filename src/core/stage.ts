// The stage contract and its runner. A stage returns CONTINUE or a Deny; it throws only for bugs
// and infrastructure faults. Stages may answer synchronously: the runner only awaits when a stage
// actually returned a promise, so a request that needs no I/O allocates no promises here. The
// order of the stages is the engine's (engine/stages.ts).

import type { RequestContext } from './context.js';
import type { Deny } from './reasons.js';

export const CONTINUE = null;

/** The gateway answers the request itself (a CORS preflight): no later stage runs, nothing is forwarded. */
export interface Answer {
  readonly answer: true;
  readonly status: number;
  /** Flat [name, value, …]. */
  readonly headers: readonly string[];
}
export type Outcome = Deny | typeof CONTINUE;
/** What a decision ends with: an outcome, or the gateway's own answer. */
export type Decision = Outcome | Answer;

export function isAnswer(o: Deny | Answer): o is Answer {
  return (o as Answer).answer === true;
}

/** One step of a decision. A door's own stages may ask for the door's richer context. */
export interface Stage<C extends RequestContext = RequestContext> {
  /** Shown in traces (`explain`, `test`) and logs. */
  readonly name: string;
  run(ctx: C): Outcome | Promise<Outcome>;
}

function isPromise(v: Outcome | Promise<Outcome>): v is Promise<Outcome> {
  return v !== null && typeof (v as Promise<Outcome>).then === 'function';
}

/** Runs `stages` in order until one denies. Returns synchronously when every stage did. */
export function runStages<C extends RequestContext>(stages: readonly Stage<C>[], ctx: C, from = 0): Outcome | Promise<Outcome> {
  for (let i = from; i < stages.length; i++) {
    const out = stages[i]!.run(ctx);
    if (isPromise(out)) return continueAfter(out, stages, ctx, i + 1);
    if (out !== CONTINUE) return out;
  }
  return CONTINUE;
}

async function continueAfter<C extends RequestContext>(pending: Promise<Outcome>, stages: readonly Stage<C>[], ctx: C, next: number): Promise<Outcome> {
  const out = await pending;
  if (out !== CONTINUE) return out;
  return runStages(stages, ctx, next);
}
