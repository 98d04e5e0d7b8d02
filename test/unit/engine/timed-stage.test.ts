import { describe, expect, it } from 'vitest';
import { deny } from '../../../src/core/reasons.js';
import { CONTINUE, type Outcome, type Stage } from '../../../src/core/stage.js';
import { timed } from '../../../src/engine/timed-stage.js';
import { MARK, SampledSpan } from '../../../src/observability/trace-sampler.js';
import { contextWith } from '../../helpers/context.js';
import { planFrom } from '../../helpers/plan.js';

const plan = await planFrom('version: 1\nupstreams: { app: { url: "http://127.0.0.1:1" } }\nroutes:\n  - { name: open, match: { path: "/**" }, public: true }\n');
const REFUSED = deny('PERMISSION_DENIED');

function stage(out: () => Outcome | Promise<Outcome>): Stage {
  return { name: 'authorize', run: out };
}

describe('timed', () => {
  it('keeps the name and the outcome, and marks nothing on an unsampled request', () => {
    const s = timed(
      stage(() => REFUSED),
      MARK.authzStart,
    );
    const ctx = contextWith(plan);
    expect(s.name).toBe('authorize');
    expect(s.run(ctx)).toBe(REFUSED);
    expect(ctx.span).toBeUndefined();
  });

  it('marks the start and end of a synchronous stage on a sampled request, and answers synchronously', () => {
    const ctx = contextWith(plan);
    ctx.span = new SampledSpan('', 'aaaaaaaaaaaaaaaa');
    const out = timed(
      stage(() => CONTINUE),
      MARK.authzStart,
    ).run(ctx);
    expect(out).toBe(CONTINUE);
    const m = ctx.span.marks;
    expect(m[MARK.authzStart]).toBeGreaterThan(0);
    expect(m[MARK.authzEnd]).toBeGreaterThanOrEqual(m[MARK.authzStart]!);
    expect(m[MARK.authnStart]).toBe(0);
  });

  it('marks the end of an asynchronous stage when its promise settles', async () => {
    const ctx = contextWith(plan);
    ctx.span = new SampledSpan('', 'aaaaaaaaaaaaaaaa');
    let resolve: (o: Outcome) => void = () => undefined;
    const pending = timed(
      stage(() => new Promise<Outcome>((r) => (resolve = r))),
      MARK.limitsStart,
    ).run(ctx);
    expect(ctx.span.marks[MARK.limitsStart]).toBeGreaterThan(0);
    expect(ctx.span.marks[MARK.limitsEnd]).toBe(0);
    resolve(REFUSED);
    expect(await pending).toBe(REFUSED);
    expect(ctx.span.marks[MARK.limitsEnd]).toBeGreaterThanOrEqual(ctx.span.marks[MARK.limitsStart]!);
  });
});
